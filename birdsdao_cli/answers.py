"""What `birds ask` and `birds identify` both show: the assistant's progress, and a reply with its sources."""

from __future__ import annotations

from birdsdao_cli import output

CHECKING = {"zh": "正在生成回答，核对来源后显示 …",
            "en": "Writing the answer; it is shown once checked against its sources …"}


class ConsoleReporter:
    """The assistant's Reporter for a terminal: messages, spinners and progress bars on stderr."""

    def say(self, message: str) -> None:
        output.console.print(message, highlight=False)

    def busy(self, label: str):
        return output.console.status(label)

    def progress(self, label: str):
        return output.progress_bar(label)


def print_sources(answer) -> None:
    if not answer.hits:
        return
    label = "来源" if answer.lang == "zh" else "Sources"
    output.console.print(f"[dim]{label}:[/]")
    for number, hit in enumerate(answer.hits, start=1):
        output.console.print(f"[dim]  [{number}] {hit.citation} (score {hit.score:.2f})[/]", highlight=False)


def print_reply(reply, *, sources: bool = True) -> None:
    """A reply's text as it comes; a grounded answer comes whole once the guard has checked it, so a spinner
    says why nothing shows yet. Then its sources."""
    answer = reply.answer
    if answer.mode == "grounded":
        with output.console.status(CHECKING[answer.lang]):
            text = "".join(reply)
        print(text, flush=True)
    else:
        for piece in reply:
            print(piece, end="", flush=True)
        print()
    if sources:
        print_sources(answer)

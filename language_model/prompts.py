"""Prompt templates per model family, with the chat history rendered in.

A base (not instruction-tuned) model such as the default Gemma 3 270M continues text, so it gets a
completion-style transcript that ends where the answer should begin; a model whose tokenizer carries a
chat template gets that template. ChatGLM's own format is kept for its prefix checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from birdsdao.prompts import has_cjk

Turn = tuple[str, str]  # (question, answer)


@dataclass(frozen=True)
class Template:
    name: str
    round_format: str  # one finished round: {index}, {question}, {answer}
    open_format: str  # the round being asked: ends where the model writes
    stops: tuple[str, ...]  # text that ends an answer (the model starting the next round)

    def render(self, question: str, history: list[Turn] = ()) -> str:
        rounds = [self.round_format.format(index=i + 1, question=q, answer=a) for i, (q, a) in enumerate(history)]
        return "".join(rounds) + self.open_format.format(index=len(history) + 1, question=question)


COMPLETION_ZH = Template("completion-zh", "问：{question}\n答：{answer}\n\n", "问：{question}\n答：",
                         ("\n问：", "\n\n\n"))
COMPLETION_EN = Template("completion-en", "Question: {question}\nAnswer: {answer}\n\n",
                         "Question: {question}\nAnswer:", ("\nQuestion:", "\n\n\n"))
CHATGLM = Template("chatglm", "[Round {index}]\n\n问：{question}\n\n答：{answer}\n\n",
                   "[Round {index}]\n\n问：{question}\n\n答：", ("[Round",))


def build_prompt(tokenizer, family: str, question: str, history: list[Turn] = ()) -> tuple[str, tuple[str, ...]]:
    """The text to feed the model and the stop strings for its answer."""
    if family == "chatglm":
        return CHATGLM.render(question, history), CHATGLM.stops
    if getattr(tokenizer, "chat_template", None):
        messages = []
        for asked, answered in history:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": question})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, ()
    template = COMPLETION_ZH if has_cjk(question) else COMPLETION_EN
    return template.render(question, history), template.stops



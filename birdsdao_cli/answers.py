"""What `birds ask` and `birds identify` both print: the answering model's loading, and an answer's sources."""

from __future__ import annotations

from birdsdao_cli import output


def load_model(base_model, prefix, device, models_dir, fallback: bool):
    """The answering model; with a KB, a model that cannot load means retrieved passages, not a failure."""
    from language_model.runtime import load_answering_model, try_load_answering_model

    say = lambda message: output.console.print(message)  # noqa: E731
    with output.console.status("Loading the language model …"):
        if not fallback:
            return load_answering_model(base_model, models_dir, prefix=prefix, device=device, progress=say)
        model, problem = try_load_answering_model(base_model, models_dir, prefix=prefix, device=device,
                                                  progress=say)
    if problem:
        output.console.print(f"[yellow]The language model did not load ({problem}); answering with retrieved "
                             "passages.[/]", highlight=False)
    return model


def print_sources(answer) -> None:
    if not answer.hits:
        return
    label = "来源" if answer.lang == "zh" else "Sources"
    output.console.print(f"[dim]{label}:[/]")
    for number, hit in enumerate(answer.hits, start=1):
        page = f" p.{hit.page}" if hit.page else ""
        output.console.print(f"[dim]  [{number}] {hit.source}{page} #{hit.chunk} (score {hit.score:.2f})[/]",
                             highlight=False)

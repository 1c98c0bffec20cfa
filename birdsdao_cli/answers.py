"""What `birds ask` and `birds identify` both print: the answering model's loading, and an answer's sources."""

from __future__ import annotations

from birdsdao_cli import output


def load_model(models_dir, *, fallback: bool, base_model=None, prefix=None, no_prefix: bool = False,
               device: str = "cpu", quantization_bit: int | None = None):
    """The answering model; with a KB, a model that cannot load means retrieved passages, not a failure.

    The default model comes with the bundled prefix unless `no_prefix`. Quantization asked for on a machine
    that cannot do it is an error even with a KB: the user chose it."""
    from birdsdao.language_model.models import check_quantization
    from birdsdao.language_model.runtime import (
        check_model_paths,
        load_answering_model,
        resolve_prefix,
        try_load_answering_model,
    )

    check_model_paths(base_model, prefix)  # a typo is an error even where a model that cannot load is not
    prefix, bundled = resolve_prefix(base_model, prefix, no_prefix)
    if quantization_bit is not None:
        check_quantization(quantization_bit, device)
    say = lambda message: output.console.print(message)  # noqa: E731
    options = {"prefix": prefix, "prefix_optional": bundled, "device": device, "progress": say,
               "quantization_bit": quantization_bit}
    with output.console.status("Loading the language model …"):
        if not fallback:
            return load_answering_model(base_model, models_dir, **options)
        model, problem = try_load_answering_model(base_model, models_dir, **options)
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


CHECKING = {"zh": "正在生成回答，核对来源后显示 …", "en": "Writing the answer; it is shown once checked against its sources …"}


def print_stream(answer, stream) -> None:
    """An answer's text as it comes; a grounded answer comes whole once the guard has checked it, so a
    spinner says why nothing shows yet."""
    if answer.mode == "grounded":
        with output.console.status(CHECKING[answer.lang]):
            text = "".join(stream)
        print(text, flush=True)
        return
    for piece in stream:
        print(piece, end="", flush=True)
    print()

"""`birds identify`: the birds in a photo (species, count, boxes) and a description of each species."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.answers import ConsoleReporter, print_reply
from birdsdao_cli.options import (
    BaseModelOpt,
    ChromaHostOpt,
    ChromaPortOpt,
    JsonOpt,
    NoPrefixOpt,
    PrefixOpt,
    QuantizationOpt,
)


def identify(
    ctx: typer.Context,
    photos: Annotated[list[str], typer.Argument(help="Photos, folders of photos, or glob patterns ('*.jpg').")],
    weights: Annotated[Path | None, typer.Option("--weights", help="An ultralytics detector (.pt) or its ONNX "
                                                 "export.", show_default="the bundled one")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto (ONNX when there is an .onnx file: starts in a "
                                         "second), torch or onnx.")] = "auto",
    conf: Annotated[float, typer.Option("--conf", min=0.0, max=1.0, help="Least confidence of a bird to report.")]
    = 0.25,
    certain: Annotated[float | None, typer.Option("--certain", min=0.0, max=1.0, help="Below this a bird is "
                                                  "uncertain: its candidates are shown and it is not described.",
                                                  show_default="0.7 with a classifier (the bundled one), 0.5 for "
                                                  "a detector's own classes")] = None,
    iou: Annotated[float, typer.Option("--iou", min=0.0, max=1.0, help="NMS IoU threshold.")] = 0.7,
    classifier: Annotated[str | None, typer.Option("--classifier", help="A folder from `birds train-classifier` "
                                                   "that names the birds, or none for the detector's own "
                                                   "classes.", show_default="the bundled one with the bundled "
                                                   "detector; none with --weights")] = None,
    gate: Annotated[bool | None, typer.Option("--gate/--no-gate", help="Photos the classifier sees no bird in "
                                              "have none; a bird the detector misses is the whole photo.",
                                              show_default="on with the bundled detector, off with --weights")]
    = None,
    imgsz: Annotated[int | None, typer.Option("--imgsz", min=32, help="Inference size.",
                                              show_default="the detector's training size")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, 0, cuda:1 …")] = "cpu",
    save: Annotated[Path | None, typer.Option("--save", help="Write annotated copies into this folder.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh or en: names and descriptions.")] = "zh",
    no_describe: Annotated[bool, typer.Option("--no-describe", help="Only find and name the birds.")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Describe with the species card's text, not the "
                                         "language model.")] = False,
    generate: Annotated[bool, typer.Option("--generate", help="Let the language model write descriptions where the "
                                           "default model quotes the card instead (docs/answers.md).")] = False,
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base that grounds descriptions.")] = "birds",
    base_model: BaseModelOpt = None,
    prefix: PrefixOpt = None,
    no_prefix: NoPrefixOpt = False,
    quantization_bit: QuantizationOpt = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 160,
    chroma_host: ChromaHostOpt = None,
    chroma_port: ChromaPortOpt = 8000,
    json_out: JsonOpt = False,
) -> None:
    """Find the birds in photos: species, count, confidence and box; then describe each species found.

    The detector finds the birds; the species classifier (a pretrained EfficientNet-Lite and a head fitted
    by `birds train-classifier`) names each from its box, and its bird gate turns away photos with no bird.
    A bird below --certain is shown as uncertain with its top candidates instead of being described.
    Descriptions come from the language model grounded on the species' card (built-in KB 鸟类百科);
    --no-llm shows the card text itself, --no-describe skips them.

    Examples:

      birds identify photo.jpg

      birds identify ~/birding/2026-05/ --save annotated/ --no-describe --json

      birds identify bird.png --lang en --no-llm
    """
    from birdsdao.assistant import Assistant, AssistantConfig, ModelChoice
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.generate import GenerationSettings
    from birdsdao.recognition.identify import (
        IdentifyOptions,
        certain_threshold,
        check_inputs,
        require_some_read,
        species_to_describe,
    )

    if lang not in ("zh", "en"):
        raise InvalidInputError(f"--lang {lang!r}: choose zh or en")
    llm_device = "cpu" if device == "cpu" else f"cuda:{device}" if device.isdigit() else device
    model = ModelChoice(base_model, prefix, no_prefix, llm_device, quantization_bit, off=no_llm)
    config = AssistantConfig(settings=ctx.obj["settings"], kb=kb, chroma_host=chroma_host, chroma_port=chroma_port,
                             model=model, generate=generate,
                             generation=GenerationSettings(max_new_tokens=max_new_tokens), weights=weights,
                             backend=backend, imgsz=imgsz, detector_device=device, classifier=classifier, gate=gate)
    assistant = Assistant(config, ConsoleReporter())
    if not no_describe:
        assistant.check_model_options()  # before the photos, not after them
    check_inputs(photos, save)  # a missing photo or an unwritable --save fails before any model loads
    if not no_describe and assistant.needs_model(lang):
        assistant.load_model_in_background(required=False)  # while the photos are read
    started = time.perf_counter()
    options = IdentifyOptions(conf=conf, iou=iou, certain=certain, save=save, lang=lang)
    results = []
    for result in assistant.identify(photos, options):
        results.append(result)
        if not json_out:
            _show_photo(result, lang)
    timings = {"detection": time.perf_counter() - started}
    require_some_read(results)
    descriptions = [] if no_describe else _describe(assistant, species_to_describe(results), lang, json_out)
    if json_out:
        timings["total"] = time.perf_counter() - started
        summary = assistant.recognition_summary()
        output.print_json({"photos": [result.to_dict() for result in results], "descriptions": descriptions,
                           **summary, "certain": certain_threshold(options, summary["classifier"] is not None),
                           "timings": {key: round(value, 3) for key, value in timings.items()}})


def _show_photo(result, lang: str) -> None:
    if result.error:
        output.console.print(f"[yellow]skipped[/] {result.path}: {result.error}", highlight=False)
        return
    found = len(result.birds)
    title = f"{result.path} ({result.width}×{result.height}): " + (
        f"{found} bird{'s' if found != 1 else ''}" if found else "no bird found")
    if not found:
        if result.bird_probability is not None:
            title += f" (bird probability {result.bird_probability:.2f}, like a known species {result.similarity:.2f})"
        output.stdout.print(title)
        return
    table = Table("species", "name", "confidence", "box (x1, y1, x2, y2)", title=title, title_justify="left")
    for bird in result.birds:
        name = bird.chinese_name if lang == "zh" and bird.chinese_name else bird.english_name
        if bird.certain:
            table.add_row(bird.species, name, f"{bird.confidence:.2f}", ", ".join(f"{v:.0f}" for v in bird.box))
        else:
            others = ", ".join(f"{c.species} {c.confidence:.2f}" for c in bird.candidates)
            table.add_row("uncertain", f"candidates: {others}", f"{bird.confidence:.2f}",
                          ", ".join(f"{v:.0f}" for v in bird.box))
    output.stdout.print(table)
    if not all(bird.certain for bird in result.birds):
        output.console.print("[dim]uncertain: below --certain, so neither counted nor described; it may be a species "
                             "the model was not taught[/]", highlight=False)
    if result.counts:
        output.stdout.print("count: " + ", ".join(f"{species} × {n}" for species, n in result.counts.items()))
    if result.annotated:
        output.console.print(f"annotated: {result.annotated}", highlight=False)


def _describe(assistant, birds, lang: str, json_out: bool) -> list:
    descriptions = []
    for bird, reply in assistant.describe(birds, lang):
        if json_out:
            reply.result()
        else:
            name = f"{bird.chinese_name}（{bird.english_name}）" if lang == "zh" else bird.english_name
            output.stdout.print(f"\n[bold]{name}[/]", highlight=False)
            print_reply(reply)
        descriptions.append({"species": bird.species, **reply.answer.to_dict()})
    return descriptions

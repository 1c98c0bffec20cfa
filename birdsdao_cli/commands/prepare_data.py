"""`birds prepare-data`: a BIRDS-525 folder in, a YOLO + COCO detection dataset out."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.options import DeviceOpt, JsonOpt, WorkersOpt


class BoxMode(StrEnum):
    full = "full"
    detector = "detector"


class CheckMode(StrEnum):
    decode = "decode"
    header = "header"


class LabelMode(StrEnum):
    link = "link"
    write = "write"


class LinkMode(StrEnum):
    hardlink = "hardlink"
    symlink = "symlink"
    copy = "copy"


def prepare_data(
    src: Annotated[Path, typer.Argument(help="Unpacked BIRDS-525: train/ valid/ test/ <SPECIES>/*.jpg, birds.csv.")],
    out: Annotated[Path, typer.Argument(help="Dataset folder to create (built aside, renamed into place at the end).")],
    classes: Annotated[int, typer.Option("--classes", "-n", min=1, help="Keep the N species with most images.")] = 161,
    species_file: Annotated[
        Path | None, typer.Option("--species-file", help="Keep exactly these species: one name a line, # comments.")
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Index csv (default: SRC/birds.csv when present).")] = None,
    boxes: Annotated[
        BoxMode, typer.Option("--boxes", help="full: the whole photo (BIRDS-525 photos are crops); detector: a "
                              "COCO model's best bird box.")
    ] = BoxMode.full,
    detector: Annotated[
        Path | None, typer.Option("--detector", help="COCO-trained ultralytics weights for --boxes detector.")
    ] = None,
    detector_conf: Annotated[
        float, typer.Option("--detector-conf", min=0.0, max=1.0, help="Least confidence of a detector box.")
    ] = 0.25,
    link: Annotated[LinkMode, typer.Option("--link", help="How images enter OUT; a hard link that cannot be made "
                                           "(another disk) becomes a copy.")] = LinkMode.hardlink,
    labels: Annotated[LabelMode, typer.Option("--labels", help="link: a class's full-frame labels are hard links "
                                              "of one read-only file (they hold the same line; no new file or "
                                              "disk block each); write: a file each, for label tools that edit "
                                              "boxes in place. Detector boxes are always written.")]
    = LabelMode.link,
    check: Annotated[CheckMode, typer.Option("--check", help="decode: decode every image, so a damaged one is "
                                             "skipped now, not met in training; header: read headers and end "
                                             "markers only (as ultralytics checks), no decoding CPU.")]
    = CheckMode.decode,
    workers: WorkersOpt = 2,
    device: DeviceOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert BIRDS-525 into a YOLO detection dataset of its most-photographed species.

    Writes images/ and labels/ (train, val, test), data.yaml for `birds train`, classes.json,
    COCO annotations/instances_*.json and report.json. Broken images are skipped and listed.

    Examples:

      birds prepare-data ~/data/birds525 ~/data/birds161

      birds prepare-data ~/data/birds525 ~/data/mine --species-file my-species.txt --link copy

      birds prepare-data ~/data/birds525 ~/data/boxed --boxes detector --detector yolov8x.pt
    """
    from birdsdao.data_prep import ConvertConfig, convert_dataset

    config = ConvertConfig(
        source=src, output=out, classes=classes, species_file=species_file, csv=csv, boxes=boxes.value,
        detector=detector, detector_conf=detector_conf, device=device, link=link.value, labels=labels.value,
        check=check.value, workers=workers, overwrite=overwrite,
    )
    with output.progress_bar("Converting images") as progress:
        report = convert_dataset(config, progress=progress)
    if json_out:
        output.print_json(report.to_dict())
    else:
        _render(report)


def _render(report) -> None:
    output.stdout.print(f"Dataset written to {report.output}", soft_wrap=True)
    table = Table()
    table.add_column("split")
    table.add_column("images", justify="right")
    for split, count in report.images.items():
        table.add_row(split, "missing in SRC" if split in report.missing_splits else str(count))
    output.stdout.print(table)
    output.stdout.print(
        f"{len(report.kept)} of {report.species_in_source} species kept (index: {report.index}); "
        f"{len(report.skipped)} files skipped; {report.seconds:.1f} s"
    )
    tied = report.tied_at_cutoff
    if tied:
        kept = [name for name in tied if name in report.kept]
        shown = ", ".join(kept[:5]) + (", …" if len(kept) > 5 else "")
        output.stdout.print(
            f"{len(tied)} species tie for the last places; by name, {len(kept)} were kept ({shown}): "
            "report.json lists them all"
        )
    if report.boxes["mode"] == "detector":
        fallbacks = report.boxes["fallbacks_to_full"]
        output.stdout.print(f"The detector found no bird in {fallbacks} images: they keep the full-frame box")
    for item in report.skipped[:10]:
        output.stdout.print(f"  skipped {item['path']}: {item['reason']}", soft_wrap=True)
    if len(report.skipped) > 10:
        output.stdout.print(f"  … and {len(report.skipped) - 10} more in report.json")
    for warning in report.warnings:
        output.console.print(f"[yellow]Warning:[/] {warning}")

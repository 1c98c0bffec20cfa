"""`convert_dataset`: a BIRDS-525 tree in, a YOLO + COCO detection dataset out, all or nothing."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from birdsdao.data_prep.boxes import BOX_MODES, FULL_BOX, BirdBoxDetector, BoxFinder
from birdsdao.data_prep.coco import CocoWriter
from birdsdao.data_prep.images import (
    CHECKS,
    LABEL_MODES,
    LINK_MODES,
    Placed,
    probe_and_place,
    safe_stem,
    write_text,
    yolo_line,
)
from birdsdao.data_prep.selection import Selection, read_species_file, select_top
from birdsdao.data_prep.source import OUTPUT_SPLITS, SourceImage, SourceIndex, read_source
from birdsdao.errors import InvalidInputError, OutputExistsError
from birdsdao.inputs import writable_folder

Progress = Callable[[int, int], None]  # (images done, images in all)
_BATCH = 64  # images per detector call, and per progress update
_PROTOTYPES = ".label-prototypes"  # inside the staging folder while it is built; gone from OUT


@dataclass
class ConvertConfig:
    source: Path
    output: Path
    classes: int = 161
    species_file: Path | None = None
    csv: Path | None = None
    boxes: str = "full"
    detector: Path | None = None
    detector_conf: float = 0.25
    device: str | None = None
    link: str = "hardlink"
    labels: str = "link"
    check: str = "decode"
    workers: int = 2
    overwrite: bool = False

    def validate(self, *, has_box_finder: bool = False) -> None:
        if self.link not in LINK_MODES:
            raise InvalidInputError(f"--link must be one of {', '.join(LINK_MODES)}, not {self.link!r}")
        if self.labels not in LABEL_MODES:
            raise InvalidInputError(f"--labels must be one of {', '.join(LABEL_MODES)}, not {self.labels!r}")
        if self.check not in CHECKS:
            raise InvalidInputError(f"--check must be one of {', '.join(CHECKS)}, not {self.check!r}")
        if self.boxes not in BOX_MODES:
            raise InvalidInputError(f"--boxes must be one of {', '.join(BOX_MODES)}, not {self.boxes!r}")
        if self.boxes == "detector" and self.detector is None and not has_box_finder:
            raise InvalidInputError("--boxes detector needs --detector PATH (a COCO-trained YOLO .pt)")
        if self.workers < 1:
            raise InvalidInputError(f"--workers must be at least 1, not {self.workers}")
        if Path(self.output).resolve() == Path(self.source).resolve():
            raise InvalidInputError("OUT must differ from SRC: the conversion would replace its own source")


@dataclass
class ConvertReport:
    source: str
    output: str
    index: str  # "birds.csv" (or the csv given) or "folders"
    species_in_source: int
    kept: list[str]
    dropped: list[str]
    tied_at_cutoff: list[str]
    images: dict[str, int]  # written per split
    skipped: list[dict[str, str]]
    missing_splits: list[str]
    label_aliases: dict[str, list[str]]
    boxes: dict[str, object]
    links: dict[str, int]  # images by how they entered OUT: hardlink, symlink, copy
    label_files: dict[str, int]  # labels by how they were made: link (of their class's one file) or write
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    config: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def convert_dataset(config: ConvertConfig, progress: Progress | None = None, *,
                    box_finder: BoxFinder | None = None) -> ConvertReport:
    """Build the dataset in a hidden sibling of `config.output` and rename it into place at the end.

    `box_finder` replaces the detector that `--boxes detector` would load (any object with `boxes(paths)`).
    """
    started = time.perf_counter()
    config.validate(has_box_finder=box_finder is not None)
    output = Path(config.output).absolute()
    if output.exists() and not config.overwrite:
        raise OutputExistsError(f"{output} already exists", hint="pass --overwrite to replace it")
    writable_folder(output, "the dataset folder")  # now, not after minutes of work
    index = read_source(Path(config.source), config.csv)
    counts = index.counts()
    selection = (
        read_species_file(config.species_file, counts) if config.species_file else select_top(counts, config.classes)
    )
    detector = box_finder
    if config.boxes == "detector" and detector is None:
        detector = BirdBoxDetector(config.detector, conf=config.detector_conf, device=config.device)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        report = _build(staging, index, selection, detector, config, progress)
        report.output = str(output)
        report.seconds = round(time.perf_counter() - started, 3)
        _write_json(staging / "report.json", report.to_dict())
        _replace(staging, output)
    except BaseException:  # Ctrl-C included: never leave half a dataset behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _build(out: Path, index: SourceIndex, selection: Selection, detector: BoxFinder | None,
           config: ConvertConfig, progress: Progress | None) -> ConvertReport:
    class_ids = {name: i for i, name in enumerate(selection.kept)}
    kept = sorted(
        (image for image in index.images if image.species in class_ids),
        key=lambda image: (OUTPUT_SPLITS.index(image.split), image.species, image.rel),
    )
    splits = [split for split in OUTPUT_SPLITS if any(image.split == split for image in kept)]
    (out / "annotations").mkdir()
    writers: dict[str, CocoWriter] = {}
    for split in splits:
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        description = f"BIRDS-525 {split}, {len(class_ids)} species"
        writers[split] = CocoWriter(out / "annotations" / f"instances_{split}.json", selection.kept, description)
    skipped = [asdict(item) for item in index.skipped]
    written: dict[str, Counter[str]] = {split: Counter() for split in OUTPUT_SPLITS}
    links: Counter[str] = Counter()
    label_files: Counter[str] = Counter()
    fallbacks = 0
    done = 0
    try:
        label_ids = None if detector else class_ids  # full-frame labels are the workers' job
        prototypes = _label_prototypes(out, class_ids) if label_ids and config.labels == "link" else {}
        for batch in _batched(_place_all(out, kept, config, label_ids, prototypes), _BATCH):
            good = [(image, placed) for image, placed in batch if placed.ok]
            skipped += [{"path": image.rel, "reason": placed.reason} for image, placed in batch if not placed.ok]
            boxes = detector.boxes([str(out / "images" / i.split / p.name) for i, p in good]) if detector else []
            for number, (image, placed) in enumerate(good):
                box = FULL_BOX
                if detector:  # full-frame labels were written by the workers; these come from the detector
                    box = boxes[number] or FULL_BOX
                    fallbacks += boxes[number] is None
                    label = out / "labels" / image.split / (placed.name.rsplit(".", 1)[0] + ".txt")
                    write_text(str(label), yolo_line(class_ids[image.species], box))
                label_files[placed.label_how or "write"] += 1
                _add_to_coco(writers[image.split], image, placed, class_ids[image.species], box)
                written[image.split][image.species] += 1
                links[placed.how] += 1
            done += len(batch)
            if progress:
                progress(done, len(kept))
        for writer in writers.values():
            writer.close()
        shutil.rmtree(out / _PROTOTYPES, ignore_errors=True)  # the labels linked to them keep their line
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    warnings = _write_dataset_files(out, index, selection, written)
    return ConvertReport(
        source=str(Path(config.source).absolute()),
        output="",
        index=index.csv_path.name if index.csv_path else "folders",
        species_in_source=len(index.counts()),
        kept=selection.kept,
        dropped=selection.dropped,
        tied_at_cutoff=selection.tied_at_cutoff,
        images={split: sum(written[split].values()) for split in OUTPUT_SPLITS},
        skipped=skipped,
        missing_splits=index.missing_splits,
        label_aliases=index.label_aliases,
        boxes={"mode": config.boxes, "detector": str(config.detector) if config.detector else None,
               "fallbacks_to_full": fallbacks},
        links=dict(links),
        label_files=dict(label_files),
        warnings=warnings,
        config={key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()},
    )


def _place_all(out: Path, images: list[SourceImage], config: ConvertConfig, class_ids: dict[str, int] | None,
               prototypes: dict[str, str]) -> Iterator[tuple[SourceImage, Placed]]:
    """Yield each image with its outcome, in order, decoding in worker processes when asked.

    With `class_ids`, the workers also place each image's full-frame label: a hard link of its class's file in
    `prototypes` ({species: path}) where there is one, else a file of its own.
    """
    tasks = _tasks(out, images, config.link, config.check, class_ids, prototypes)
    if config.workers == 1:
        for image, task in zip(images, tasks, strict=True):
            yield image, probe_and_place(*task)
        return
    # fork is cheapest, but not once torch (the detector) has started its threads.
    method = "spawn" if "torch" in sys.modules else "fork"
    pool = multiprocessing.get_context(method).Pool(config.workers, initializer=_ignore_sigint)
    try:
        yield from zip(images, pool.imap(_probe_task, tasks, chunksize=32), strict=True)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _label_prototypes(out: Path, class_ids: dict[str, int]) -> dict[str, str]:
    """One read-only full-frame label file per class, for the workers to hard-link; {species: path}.

    Read-only because every label of the class is this one file: a label tool that saved one of them in
    place would otherwise rewrite the whole class (`--labels write` gives each its own file)."""
    folder = out / _PROTOTYPES
    folder.mkdir()
    paths = {}
    for species, class_id in class_ids.items():
        path = paths[species] = str(folder / f"{class_id}.txt")
        write_text(path, yolo_line(class_id, FULL_BOX))
        os.chmod(path, 0o444)
    return paths


def _tasks(out: Path, images: list[SourceImage], link: str, check: str, class_ids: dict[str, int] | None,
           prototypes: dict[str, str]) -> Iterator[tuple[str, ...]]:
    """One worker task per image. String work only, with what repeats computed once: on the full dataset
    this loop runs 90,000 times in the parent, which every worker waits on."""
    images_dir = {split: str(out / "images" / split) for split in OUTPUT_SPLITS}
    labels_dir = {split: str(out / "labels" / split) for split in OUTPUT_SPLITS}
    species_stem: dict[str, str] = {}
    label_lines: dict[str, str] = {}
    used: set[tuple[str, str]] = set()
    for image in images:
        if image.species not in species_stem:
            species_stem[image.species] = safe_stem(image.species)
            if class_ids is not None:
                label_lines[image.species] = yolo_line(class_ids[image.species], FULL_BOX)
        file_stem = os.path.splitext(image.rel.rsplit("/", 1)[-1])[0]
        stem = base = f"{species_stem[image.species]}-{safe_stem(file_stem)}"
        number = 1
        while (image.split, stem) in used:  # `a b.jpg` and `a_b.jpg` would otherwise collide
            number += 1
            stem = f"{base}-{number}"
        used.add((image.split, stem))
        label_file = label_line = ""
        if class_ids is not None:
            label_file = f"{labels_dir[image.split]}{os.sep}{stem}.txt"
            label_line = label_lines[image.species]
        yield (image.path, images_dir[image.split], stem, link, label_file, label_line, check,
               prototypes.get(image.species, ""))


def _probe_task(task: tuple[str, ...]) -> Placed:
    return probe_and_place(*task)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _add_to_coco(writer: CocoWriter, image: SourceImage, placed: Placed, class_id: int, box) -> None:
    x, y, w, h = box
    pixels = (class_id, (x - w / 2) * placed.width, (y - h / 2) * placed.height, w * placed.width, h * placed.height)
    writer.add_image(placed.name, placed.width, placed.height, image.rel, [pixels])


def _write_dataset_files(out: Path, index: SourceIndex, selection: Selection,
                         written: dict[str, Counter[str]]) -> list[str]:
    import yaml  # PyYAML, light; ultralytics reads the file with it too

    warnings = []
    present = [split for split in OUTPUT_SPLITS if sum(written[split].values())]
    for split in OUTPUT_SPLITS:
        if split not in present:  # every image of this split was skipped or dropped
            shutil.rmtree(out / "images" / split, ignore_errors=True)
            shutil.rmtree(out / "labels" / split, ignore_errors=True)
            (out / "annotations" / f"instances_{split}.json").unlink(missing_ok=True)
    if "train" not in present:
        raise InvalidInputError(f"{index.root}: no usable training image among the chosen species")
    data = {"train": "images/train"}
    if "val" in present:
        data["val"] = "images/val"
    else:
        data["val"] = "images/train"
        warnings.append("no validation split: data.yaml validates on the training images")
    if "test" in present:
        data["test"] = "images/test"
    data["nc"] = len(selection.kept)
    data["names"] = dict(enumerate(selection.kept))
    # No `path:` key: ultralytics then resolves the splits next to data.yaml, so the folder can move.
    with open(out / "data.yaml", "w", encoding="utf-8") as handle:
        handle.write("# Written by `birds prepare-data`. Paths are relative to this file's folder.\n")
        yaml.safe_dump(data, handle, allow_unicode=True, sort_keys=False)
    classes = [
        {
            "id": class_id,
            "name": name,
            "scientific_name": index.scientific_names.get(name, ""),
            "images": {split: written[split][name] for split in OUTPUT_SPLITS} | {
                "total": sum(written[split][name] for split in OUTPUT_SPLITS)
            },
        }
        for class_id, name in enumerate(selection.kept)
    ]
    _write_json(out / "classes.json", classes)
    return warnings


def _write_json(path: Path, data: object) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def _replace(staging: Path, output: Path) -> None:
    """Swap the finished dataset in; an old OUT is removed only once the new one is in place."""
    if output.exists():
        trash = output.parent / f".{output.name}.old-{os.getpid()}"
        output.rename(trash)
        staging.rename(output)
        shutil.rmtree(trash) if trash.is_dir() else trash.unlink()
    else:
        staging.rename(output)

"""Read a BIRDS-525 tree: its `birds.csv` when there is one, otherwise its folders.

Both Kaggle releases are understood: 525 (`class id,filepaths,labels,data set,scientific name`)
and the older 400 (`class index,filepaths,labels,data set`, CRLF line endings). A species is
identified by its folder name with runs of white space collapsed, because the real set spells
one class `PARAKETT  AUKLET` in train/ and `PARAKETT AUKLET` in valid/. Names keep their
original spelling otherwise (`RUFUOS MOTMOT` stays misspelled: it is the dataset's label).
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from birdsdao.errors import DatasetNotFoundError, InvalidInputError

# The dataset's split names, and the names ultralytics and COCO users expect.
SPLIT_NAMES = {"train": "train", "valid": "val", "validation": "val", "val": "val", "test": "test"}
OUTPUT_SPLITS = ("train", "val", "test")
CSV_NAME = "birds.csv"

_REQUIRED_COLUMNS = ("filepaths", "labels", "data set")


@functools.lru_cache(maxsize=4096)  # a few hundred names, each on thousands of rows
def canonical_name(name: str) -> str:
    """One spelling per species: trimmed, with runs of white space made single spaces."""
    return re.sub(r"\s+", " ", name).strip()


@functools.lru_cache(maxsize=4096)
def clean_scientific_name(name: str) -> str:
    """Strip the stray spaces and dots the dataset has around some scientific names."""
    return canonical_name(name).strip(" .")


@dataclass(slots=True)
class SourceImage:
    path: str  # the file in the source tree (SRC joined with `rel`): a string, built for 90,000 rows
    rel: str  # path relative to the source root, as the csv spells it
    species: str  # canonical species name
    split: str  # train, val or test


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class SourceIndex:
    root: Path
    csv_path: Path | None
    images: list[SourceImage]
    scientific_names: dict[str, str] = field(default_factory=dict)
    # csv labels that differ from the folder a file sits in: {species: [labels]}
    label_aliases: dict[str, list[str]] = field(default_factory=dict)
    splits_found: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(image.species for image in self.images)

    def split_counts(self) -> dict[str, Counter[str]]:
        result: dict[str, Counter[str]] = {split: Counter() for split in OUTPUT_SPLITS}
        for image in self.images:
            result[image.split][image.species] += 1
        return result

    @property
    def missing_splits(self) -> list[str]:
        return [split for split in OUTPUT_SPLITS if split not in self.splits_found]


def read_source(root: Path, csv_path: Path | None = None) -> SourceIndex:
    """Index every image of a BIRDS-525 tree without opening any of them."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such folder", hint="give the folder you unpacked BIRDS-525 into")
    if csv_path is None and (root / CSV_NAME).is_file():
        csv_path = root / CSV_NAME
    index = _read_csv(root, Path(csv_path)) if csv_path else _walk_folders(root)
    if not index.images:
        raise DatasetNotFoundError(
            f"{root}: found no images in train/, valid/ or test/ species folders",
            hint="SRC must look like SRC/train/<SPECIES>/*.jpg (with valid/ and test/ beside it)",
        )
    return index


def _split_dirs(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        split = SPLIT_NAMES.get(entry.name.lower())
        if split and entry.is_dir() and split not in found:
            found[split] = Path(entry.path)
    return found


def _walk_folders(root: Path) -> SourceIndex:
    splits = _split_dirs(root)
    if not splits:
        raise DatasetNotFoundError(
            f"{root} is not a BIRDS-525 folder: it has no train/, valid/ or test/ folder and no {CSV_NAME}",
            hint="give the folder you unpacked BIRDS-525 into",
        )
    index = SourceIndex(root=root, csv_path=None, images=[], splits_found=sorted(splits, key=OUTPUT_SPLITS.index))
    for split, split_dir in splits.items():
        for species_entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if species_entry.name.startswith("."):
                continue
            rel_species = f"{split_dir.name}/{species_entry.name}"
            if not species_entry.is_dir():
                index.skipped.append(Skipped(rel_species, "not inside a species folder"))
                continue
            species = canonical_name(species_entry.name)
            for file_entry in sorted(os.scandir(species_entry.path), key=lambda e: e.name):
                if file_entry.name.startswith("."):
                    continue  # .DS_Store and friends are not photos anyone meant to include
                rel = f"{rel_species}/{file_entry.name}"
                if file_entry.is_dir():
                    index.skipped.append(Skipped(rel, "a folder inside a species folder"))
                    continue
                index.images.append(SourceImage(file_entry.path, rel, species, split))
    return index


def _read_csv(root: Path, csv_path: Path) -> SourceIndex:
    if not csv_path.is_file():
        raise DatasetNotFoundError(f"{csv_path}: no such csv file")
    index = SourceIndex(root=root, csv_path=csv_path, images=[])
    scientific: dict[str, Counter[str]] = defaultdict(Counter)
    aliases: dict[str, set[str]] = defaultdict(set)
    splits: set[str] = set()
    # utf-8-sig drops a byte-order mark; newline="" lets csv handle the 400 release's CRLF.
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [column.strip().lower() for column in next(reader)]
        except StopIteration:
            raise InvalidInputError(f"{csv_path}:1: the csv is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidInputError(f"{csv_path}:1: not a readable csv ({exc})") from None
        missing = [column for column in _REQUIRED_COLUMNS if column not in header]
        if missing:
            raise InvalidInputError(
                f"{csv_path}:1: the header lacks {', '.join(missing)}",
                hint="a BIRDS-525 csv has the columns class id,filepaths,labels,data set,scientific name",
            )
        col = {name: header.index(name) for name in header}
        prefix = str(root).rstrip(os.sep) + os.sep
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                image = _row_to_image(prefix, row, col, csv_path.name, line, index.skipped)
                if image is None:
                    continue
                index.images.append(image)
                splits.add(image.split)
                label = canonical_name(row[col["labels"]])
                if label and label != image.species:
                    aliases[image.species].add(label)
                if "scientific name" in col and row[col["scientific name"]].strip():
                    scientific[image.species][clean_scientific_name(row[col["scientific name"]])] += 1
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InvalidInputError(f"{csv_path}:{reader.line_num}: not a readable csv ({exc})") from None
    index.splits_found = [split for split in OUTPUT_SPLITS if split in splits]
    # Rows of one species disagree now and then; the spelling most rows use wins.
    index.scientific_names = {species: names.most_common(1)[0][0] for species, names in scientific.items()}
    index.label_aliases = {species: sorted(labels) for species, labels in sorted(aliases.items())}
    return index


def _row_to_image(prefix: str, row: list[str], col: dict[str, int], csv_name: str, line: int,
                  skipped: list[Skipped]):
    """The row's image; `prefix` is the source root with a trailing separator. Plain string work: this runs
    once per row of a 90,000-row csv."""
    def skip(reason: str) -> None:
        skipped.append(Skipped(f"{csv_name}:{line}", reason))

    if len(row) < len(col):
        return skip(f"row has {len(row)} fields, the header has {len(col)}")
    raw_path = row[col["filepaths"]].strip().replace("\\", "/")
    parts = [part for part in raw_path.split("/") if part not in ("", ".")]
    if not parts or raw_path.startswith("/") or ".." in parts or ":" in parts[0]:  # absolute, up, or C:/…
        return skip(f"file path {raw_path!r} does not stay inside the source folder")
    split = SPLIT_NAMES.get(row[col["data set"]].strip().lower())
    if split is None:
        return skip(f"unknown data set {row[col['data set']]!r} (expected train, valid or test)")
    # The folder is what exists on disk; the csv label is sometimes spelled differently.
    species = canonical_name(parts[-2] if len(parts) >= 2 else row[col["labels"]])
    if not species:
        return skip("no species name")
    return SourceImage(prefix + os.sep.join(parts), raw_path, species, split)

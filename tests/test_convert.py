import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from birdsdao.data_prep import ConvertConfig, convert_dataset
from birdsdao.errors import InvalidInputError, OutputExistsError
from tests.conftest import jpeg_bytes, shared_data


def convert(src: Path, out: Path, **options):
    return convert_dataset(ConvertConfig(source=src, output=out, **options))


def read_labels(out: Path, split: str) -> dict[str, list[str]]:
    return {p.stem: p.read_text().split() for p in sorted((out / "labels" / split).iterdir())}


def test_converts_the_tree_into_yolo_and_coco(birds_tree, tmp_path):
    out = tmp_path / "birds6"
    report = convert(birds_tree, out, classes=6)
    classes = json.loads((out / "classes.json").read_text())
    assert [c["name"] for c in classes] == [
        "D-ARNAUDS BARBET", "HOUSE FINCH", "OVENBIRD", "PARAKETT AUKLET", "RUFUOS MOTMOT", "ZEBRA DOVE",
    ]
    assert classes[1]["scientific_name"] == "HAEMORHOUS MEXICANUS"
    assert classes[1]["images"] == {"train": 6, "val": 1, "test": 1, "total": 8}
    assert report.images == {"train": 22, "val": 6, "test": 6}
    reasons = {item["path"]: item["reason"] for item in report.skipped}
    assert reasons["train/HOUSE FINCH/truncated.jpg"].startswith("corrupt image")
    assert reasons["train/OVENBIRD/empty.jpg"] == "empty file"
    assert reasons["train/ZEBRA DOVE/notes.jpg"] == "not an image Pillow can read"
    assert len(report.skipped) == 3
    assert json.loads((out / "report.json").read_text())["images"] == report.images


def test_the_header_check_writes_the_same_dataset_and_skips_the_same_broken_files(birds_tree, tmp_path):
    decoded = convert(birds_tree, tmp_path / "decoded", classes=6)
    checked = convert(birds_tree, tmp_path / "header", classes=6, check="header")
    assert checked.images == decoded.images and checked.config["check"] == "header"
    assert [item["path"] for item in checked.skipped] == [item["path"] for item in decoded.skipped]
    for split in ("train", "val", "test"):
        assert read_labels(tmp_path / "header", split) == read_labels(tmp_path / "decoded", split)
        assert (tmp_path / "header" / f"annotations/instances_{split}.json").read_text() == (
            tmp_path / "decoded" / f"annotations/instances_{split}.json").read_text()


def test_labels_and_coco_boxes_match_the_real_image_sizes(birds_tree, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "birds6"
    convert(birds_tree, out, classes=6)
    ids = {c["name"]: c["id"] for c in json.loads((out / "classes.json").read_text())}
    for split in ("train", "val", "test"):
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        images = sorted((out / "images" / split).iterdir())
        assert len(coco.imgs) == len(coco.anns) == len(images)
        labels = read_labels(out, split)
        for image in coco.imgs.values():
            source = birds_tree / image["source"]
            with Image.open(out / "images" / split / image["file_name"]) as placed:
                size = placed.size
                if placed.getexif().get(0x0112) == 6:  # shown turned a quarter
                    size = size[::-1]
            assert (image["width"], image["height"]) == size
            species = re.sub(r"\s+", " ", Path(image["source"]).parent.name)
            (annotation,) = coco.imgToAnns[image["id"]]
            assert annotation["bbox"] == [0, 0, image["width"], image["height"]]
            assert coco.cats[annotation["category_id"]]["name"] == species
            stem = image["file_name"].rsplit(".", 1)[0]
            assert labels[stem] == [str(ids[species]), "0.500000", "0.500000", "1.000000", "1.000000"]
            assert source.exists()
    rotated = [i for i in COCO(str(out / "annotations/instances_train.json")).imgs.values()
               if i["source"].endswith("rotated photo.jpg")]
    assert (rotated[0]["width"], rotated[0]["height"]) == (40, 60)


def test_output_names_are_safe_unique_and_hard_linked(birds_tree_no_csv, tmp_path):
    species = birds_tree_no_csv / "train" / "HOUSE FINCH"
    (species / "a b.jpg").write_bytes(jpeg_bytes(30, 30, 1))
    (species / "a_b.jpg").write_bytes(jpeg_bytes(30, 30, 2))
    (species / "A B.JPG").write_bytes(jpeg_bytes(30, 30, 3))
    out = tmp_path / "out"
    report = convert(birds_tree_no_csv, out, classes=6)
    names = [p.name for p in (out / "images" / "train").iterdir()]
    assert all(re.fullmatch(r"[a-z0-9-]+\.jpg", name) for name in names), names
    assert {"house-finch-a-b.jpg", "house-finch-a-b-2.jpg", "house-finch-a-b-3.jpg"} <= set(names)
    assert report.links == {"hardlink": 25 + 6 + 6}
    assert os.stat(out / "images/train/house-finch-001.jpg").st_ino == os.stat(species / "001.jpg").st_ino


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_symlink_and_copy_modes(birds_tree, tmp_path, mode):
    out = tmp_path / mode
    report = convert(birds_tree, out, classes=1, link=mode)
    placed = out / "images/train/house-finch-001.jpg"
    source = birds_tree / "train/HOUSE FINCH/001.jpg"
    assert report.links == {mode: 8}  # 6 train, 1 val, 1 test
    assert placed.is_symlink() == (mode == "symlink")
    assert placed.read_bytes() == source.read_bytes()
    if mode == "copy":
        assert os.stat(placed).st_ino != os.stat(source).st_ino


def test_one_and_two_workers_write_the_same_dataset(birds_tree, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    convert(birds_tree, one, classes=6, workers=1)
    convert(birds_tree, two, classes=6, workers=2)
    for split in ("train", "val", "test"):
        assert read_labels(one, split) == read_labels(two, split)
        assert (one / f"annotations/instances_{split}.json").read_text() == (
            two / f"annotations/instances_{split}.json"
        ).read_text()


def label_inodes(out: Path) -> dict[str, set[tuple[int, int, int]]]:
    """{class id: {(inode, link count, permission bits)}} over every label file of every split."""
    found: dict[str, set[tuple[int, int, int]]] = {}
    for label in (out / "labels").glob("*/*.txt"):
        status = label.stat()
        found.setdefault(label.read_text().split()[0], set()).add((status.st_ino, status.st_nlink,
                                                                    status.st_mode & 0o777))
    return found


def test_full_frame_labels_of_a_class_are_links_of_one_read_only_file(birds_tree, tmp_path):
    linked, written = tmp_path / "linked", tmp_path / "written"
    report = convert(birds_tree, linked, classes=6)
    per_image = convert(birds_tree, written, classes=6, labels="write")
    assert report.label_files == {"link": 34} and per_image.label_files == {"write": 34}
    classes = json.loads((linked / "classes.json").read_text())
    inodes = label_inodes(linked)
    for entry in classes:
        (only,) = inodes[str(entry["id"])]  # one file for the class, over all three splits
        assert only[1] == entry["images"]["total"]  # its prototype is gone: no link left outside labels/
        assert only[2] & 0o222 == 0  # read-only: saving one label in place cannot rewrite the class
    assert not list(linked.rglob(".label-prototypes"))
    assert len({inode for files in inodes.values() for inode in files}) == 6
    assert all(nlink == 1 and mode & 0o200 for files in label_inodes(written).values()
               for _, nlink, mode in files)
    for split in ("train", "val", "test"):
        assert read_labels(linked, split) == read_labels(written, split)


def test_labels_are_written_where_a_hard_link_cannot_be_made(birds_tree, tmp_path, monkeypatch):
    import birdsdao.data_prep.images as images

    real_link = os.link

    def no_links_to_labels(source, target):
        if str(target).endswith(".txt"):
            raise OSError(31, "Too many links")  # as ext4 answers past 65,000 links of one file
        real_link(source, target)

    monkeypatch.setattr(images.os, "link", no_links_to_labels)
    out = tmp_path / "out"
    report = convert(birds_tree, out, classes=6, workers=1)
    assert report.label_files == {"write": 34} and report.links == {"hardlink": 34}
    assert all(nlink == 1 for files in label_inodes(out).values() for _, nlink, _ in files)
    assert read_labels(out, "val")["house-finch-001"] == ["1", "0.500000", "0.500000", "1.000000", "1.000000"]


def test_tied_species_at_the_cut_are_chosen_by_name(birds_tree, tmp_path):
    report = convert(birds_tree, tmp_path / "out", classes=4)
    assert report.kept == ["D-ARNAUDS BARBET", "HOUSE FINCH", "OVENBIRD", "PARAKETT AUKLET"]
    assert report.tied_at_cutoff == ["PARAKETT AUKLET", "RUFUOS MOTMOT", "ZEBRA DOVE"]
    assert report.label_aliases == {"PARAKETT AUKLET": ["PARAKETT AKULET"]}


def test_ultralytics_accepts_data_yaml(birds_tree, tmp_path):
    from ultralytics.data.utils import check_det_dataset

    out = tmp_path / "out"
    convert(birds_tree, out, classes=6)
    data = check_det_dataset(str(out / "data.yaml"))
    assert data["nc"] == 6
    assert data["names"][3] == "PARAKETT AUKLET"
    assert Path(data["train"]) == out / "images" / "train"
    assert Path(data["val"]) == out / "images" / "val"


def test_missing_validation_split_falls_back_with_a_warning(birds_tree_no_csv, tmp_path):
    import shutil

    shutil.rmtree(birds_tree_no_csv / "valid")
    report = convert(birds_tree_no_csv, tmp_path / "out", classes=6)
    assert report.missing_splits == ["val"]
    assert report.warnings == ["no validation split: data.yaml validates on the training images"]
    assert "val: images/train" in (tmp_path / "out" / "data.yaml").read_text()
    assert not (tmp_path / "out" / "images" / "val").exists()


class FixedBoxes:
    """Stands in for a COCO detector: a box for every other image, none for the rest."""

    def __init__(self):
        self.calls = 0

    def boxes(self, paths):
        self.calls += 1
        return [(0.25, 0.5, 0.5, 0.8) if number % 2 == 0 else None for number, _ in enumerate(paths)]


def test_detector_boxes_with_fallback_to_the_full_frame(birds_tree, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    finder = FixedBoxes()
    report = convert_dataset(
        ConvertConfig(source=birds_tree, output=out, classes=1, boxes="detector"), box_finder=finder
    )
    labels = [values for split in ("train", "val", "test") for values in read_labels(out, split).values()]
    boxes = [" ".join(values[1:]) for values in labels]
    assert boxes.count("0.250000 0.500000 0.500000 0.800000") == 4
    assert boxes.count("0.500000 0.500000 1.000000 1.000000") == 4
    assert report.boxes["fallbacks_to_full"] == 4
    assert report.label_files == {"write": 8}  # a file each: detector boxes differ from photo to photo
    coco = COCO(str(out / "annotations/instances_train.json"))
    image = coco.imgs[1]
    assert coco.imgToAnns[1][0]["bbox"] == [0, round(0.1 * image["height"], 2), image["width"] / 2,
                                            round(0.8 * image["height"], 2)]


def test_a_failure_midway_leaves_no_output(birds_tree, tmp_path, monkeypatch):
    import birdsdao.data_prep.convert as convert_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(convert_module, "_write_dataset_files", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        convert(birds_tree, tmp_path / "out", classes=6)
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    assert not (tmp_path / "out").exists()


def test_ctrl_c_during_conversion_leaves_no_output(birds_tree, tmp_path):
    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_dataset(ConvertConfig(source=birds_tree, output=tmp_path / "out", classes=6), progress=interrupt)
    assert [p.name for p in tmp_path.iterdir() if "out" in p.name] == []


def test_existing_output_needs_overwrite(birds_tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me unless told")
    with pytest.raises(OutputExistsError, match="already exists"):
        convert(birds_tree, out, classes=2)
    assert (out / "old.txt").exists()
    convert(birds_tree, out, classes=2, overwrite=True)
    assert not (out / "old.txt").exists()
    assert (out / "data.yaml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_bad_options_are_refused(birds_tree, tmp_path):
    with pytest.raises(InvalidInputError, match="needs --detector"):
        convert(birds_tree, tmp_path / "out", boxes="detector")
    with pytest.raises(InvalidInputError, match="--link must be one of"):
        convert(birds_tree, tmp_path / "out", link="teleport")
    with pytest.raises(InvalidInputError, match="--labels must be one of"):
        convert(birds_tree, tmp_path / "out", labels="copy")
    with pytest.raises(InvalidInputError, match="--check must be one of"):
        convert(birds_tree, tmp_path / "out", check="glance")
    with pytest.raises(InvalidInputError, match="OUT must differ"):
        convert(birds_tree, birds_tree, overwrite=True)
    assert (birds_tree / "birds.csv").exists()


def test_species_file_selects_exactly_those(birds_tree, tmp_path):
    species = tmp_path / "pick.txt"
    species.write_text("ZEBRA DOVE\nparakett auklet\n")
    report = convert(birds_tree, tmp_path / "out", species_file=species)
    assert report.kept == ["PARAKETT AUKLET", "ZEBRA DOVE"]
    assert report.images == {"train": 5, "val": 2, "test": 2}


def test_real_birds525_mini_with_the_161_species_list(tmp_path):
    source = shared_data("birds525-mini")
    species_file = shared_data("species161-by-400-counts.txt")
    report = convert(source, tmp_path / "birds161", species_file=species_file)
    assert len(report.kept) == 161
    assert report.images == {"train": 483, "val": 161, "test": 0}
    assert report.missing_splits == ["test"]
    assert report.skipped == []
    classes = json.loads((tmp_path / "birds161/classes.json").read_text())
    assert all(c["images"] == {"train": 3, "val": 1, "test": 0, "total": 4} for c in classes)
    assert "HOUSE FINCH" in report.kept and "D-ARNAUDS BARBET" in report.kept

"""Fixtures that build their own BIRDS-525-shaped trees of real JPEGs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# species -> {split folder: number of images}; sizes vary so labels must come from the real size.
SPECIES = {
    "HOUSE FINCH": {"train": 5, "valid": 1, "test": 1},
    "D-ARNAUDS BARBET": {"train": 4, "valid": 1, "test": 1},
    "OVENBIRD": {"train": 4, "valid": 1, "test": 1},  # ties with D-ARNAUDS BARBET: name decides
    "RUFUOS MOTMOT": {"train": 3, "valid": 1, "test": 1},
    "ZEBRA DOVE": {"train": 2, "valid": 1, "test": 1},
}
SCIENTIFIC = {
    "HOUSE FINCH": " HAEMORHOUS MEXICANUS.",
    "D-ARNAUDS BARBET": "TRACHYPHONUS DARNAUDII",
    "OVENBIRD": "SEIURUS AUROCAPILLA",
    "PARAKETT AUKLET": "AETHIA PSITTACULA",
    "RUFUOS MOTMOT": "MOMOTUS MOMOTA",
    "ZEBRA DOVE": "GEOPELIA STRIATA",
}


def jpeg_bytes(width: int, height: int, seed: int = 0, exif_orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 128))
    for x in range(0, width, 7):  # some structure, so the JPEG is not trivially small
        image.putpixel((x, (x * seed) % height), (255, 255, 255))
    buffer = io.BytesIO()
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(buffer, format="JPEG", quality=85, **kwargs)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_tree(root: Path, *, with_csv: bool, quirks: bool = True) -> dict[str, object]:
    """A small BIRDS-525 tree; returns facts the tests check against."""
    rows = []
    sizes: dict[str, tuple[int, int]] = {}
    seed = 0
    for class_id, (species, splits) in enumerate(sorted(SPECIES.items())):
        for split, count in splits.items():
            for number in range(1, count + 1):
                seed += 1
                width, height = 32 + 8 * (seed % 5), 24 + 8 * (seed % 3)
                rel = f"{split}/{species}/{number:03d}.jpg"
                _write(root / rel, jpeg_bytes(width, height, seed))
                sizes[rel] = (width, height)
                rows.append((class_id, rel, species, split, SCIENTIFIC[species]))
    if quirks:
        # The real set's white-space quirk: two spaces in train/ and test/, one in valid/, and a
        # misspelt csv label.
        folders = {"train": "PARAKETT  AUKLET", "valid": "PARAKETT AUKLET", "test": "PARAKETT  AUKLET"}
        for split, folder in folders.items():
            for number in range(1, 4 if split == "train" else 2):
                seed += 1
                rel = f"{split}/{folder}/{number}.jpg"
                _write(root / rel, jpeg_bytes(40, 30, seed))
                sizes[rel] = (40, 30)
                rows.append((5, rel, "PARAKETT  AKULET", split, SCIENTIFIC["PARAKETT AUKLET"]))
        # A portrait photo stored landscape with an EXIF rotation: COCO must give the displayed size.
        rel = "train/HOUSE FINCH/rotated photo.jpg"
        _write(root / rel, jpeg_bytes(60, 40, 99, exif_orientation=6))
        sizes[rel] = (40, 60)
        rows.append((2, rel, "HOUSE FINCH", "train", SCIENTIFIC["HOUSE FINCH"]))
        # Broken files: truncated, empty, and not an image at all.
        good = jpeg_bytes(64, 48, 7)
        broken = {
            "train/HOUSE FINCH/truncated.jpg": good[: len(good) // 2],
            "train/OVENBIRD/empty.jpg": b"",
            "train/ZEBRA DOVE/notes.jpg": b"this is not a photo\n",
        }
        for rel, data in broken.items():
            _write(root / rel, data)
            species = rel.split("/")[1]
            rows.append((0, rel, species, "train", SCIENTIFIC[species]))
    if with_csv:
        lines = ["class id,filepaths,labels,data set,scientific name"]
        lines += [f"{cid}.0,{rel},{label},{split},{sci}" for cid, rel, label, split, sci in rows]
        (root / "birds.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"sizes": sizes, "rows": rows}


@pytest.fixture
def birds_tree(tmp_path: Path) -> Path:
    root = tmp_path / "birds525"
    make_tree(root, with_csv=True)
    return root


@pytest.fixture
def birds_tree_no_csv(tmp_path: Path) -> Path:
    root = tmp_path / "birds525-nocsv"
    make_tree(root, with_csv=False)
    return root


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIRDS_HOME", str(tmp_path / "birds-home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("BIRDS_DEBUG", raising=False)


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared data sits beside the project in CI and dev only)")
    return path


os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a byte-level BPE tokenizer trained here: loads and generates in a second."""
    from tests.tiny_models import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


DETECTOR_SPECIES = ["HOUSE FINCH", "BANANAQUIT", "OVENBIRD"]  # the classes of biased_detector


def biased_detector(path: Path, logits: list[float], imgsz: int = 64, coarse: list[float] | None = None) -> Path:
    """A YOLOv8n whose class scores are sigmoid(logit) per species at every place; boxes are random.

    `coarse` gives the middle feature level other scores, so that two species are seen over one place.
    """
    import torch
    import ultralytics
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=len(logits), verbose=False)
    head = model.model[-1]
    for level, branch in enumerate(head.cv3):
        last = branch[-1]
        torch.nn.init.zeros_(last.weight)
        last.bias.data = torch.tensor(coarse if coarse and level == 1 else logits, dtype=torch.float32)
    model.names = dict(enumerate(DETECTOR_SPECIES[: len(logits)]))
    model.args = {"task": "detect", "imgsz": imgsz}
    model.float().eval()
    torch.save({"model": model, "ema": None, "version": ultralytics.__version__, "train_args": {"imgsz": imgsz}},
               path)
    return path

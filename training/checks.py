"""Refuse bad training input before any training starts: dataset, model, device."""

from __future__ import annotations

import difflib
from pathlib import Path

from birdsdao.errors import InvalidInputError, WeightsNotFoundError
from birdsdao.inputs import writable_folder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".mpo", ".dng"}


def check_data_yaml(path: Path) -> dict:
    """Parse and resolve a detection data.yaml the way ultralytics will, with errors that name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such data.yaml", hint="make one with `birds prepare-data SRC OUT`")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InvalidInputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not a text file") from None
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: expected a mapping with train, val and names")
    missing = [key for key in ("train", "val") if not raw.get(key)]
    if "names" not in raw and "nc" not in raw:
        missing.append("names")
    if missing:
        raise InvalidInputError(f"{path}: lacks {', '.join(missing)}")
    from birdsdao.training.ultralytics_adapter import resolve_dataset

    try:
        data = resolve_dataset(path)
    except Exception as exc:  # ultralytics raises FileNotFoundError, SyntaxError, KeyError… with useful text
        message = " ".join(str(exc).split())
        raise InvalidInputError(f"{path}: {message}") from None
    for split in ("train", "val"):
        for location in _as_list(data.get(split)):
            if _count_images(Path(location)) == 0:
                raise InvalidInputError(f"{path}: the {split} split ({location}) holds no images")
    return data


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value] if value else []


def _count_images(location: Path) -> int:
    if location.is_dir():
        return sum(1 for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if location.is_file() and location.suffix == ".txt":
        return sum(1 for line in location.read_text(encoding="utf-8").splitlines() if line.strip())
    return 0


def load_training_model(model: str):
    """A YOLO detector from a built-in model yaml (yolov8n.yaml), a yaml file, or a local .pt; never a download."""
    from birdsdao.training.ultralytics_adapter import load_yolo, yolo_from_yaml

    if model.endswith((".yaml", ".yml")):
        try:
            return yolo_from_yaml(model)
        except Exception as exc:
            raise InvalidInputError(f"{model}: not a model yaml ultralytics knows ({exc})") from None
    path = Path(model)
    if not path.exists():
        raise WeightsNotFoundError(
            f"{model}: no such weights file",
            hint="nothing is downloaded; train from scratch with --model yolov8n.yaml, or give a local .pt",
        )
    yolo = load_yolo(path, task=None, what="a model to train from")
    if yolo.task != "detect":
        raise InvalidInputError(f"{path}: a {yolo.task} model; birds trains detectors")
    return yolo


def check_device(device: str | None) -> None:
    """CUDA ids that this machine lacks, or a word torch does not know, fail here and not mid-run."""
    if device in (None, "", "cpu", "mps"):
        return
    from birdsdao.training.ultralytics_adapter import select_training_device

    try:
        select_training_device(device)
    except Exception as exc:
        raise InvalidInputError(f"--device {device}: {' '.join(str(exc).split())[:300]}") from None


def check_run(config) -> dict:
    """Everything a training or fine-tuning run needs before it starts; returns the resolved dataset."""
    from birdsdao.training.ultralytics_adapter import check_ultralytics

    config.validate()
    writable_folder(config.project, "the folder of runs")  # before any epoch, not when ultralytics first saves
    check_ultralytics()
    check_overrides(config.overrides)
    data = check_data_yaml(Path(config.data))
    check_device(config.device)
    return data


def check_overrides(overrides: dict) -> None:
    """`--set KEY=VALUE` keys must be ultralytics training arguments."""
    from birdsdao.training.ultralytics_adapter import training_argument_names

    known = training_argument_names()

    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise InvalidInputError(
                f"--set {key}: not an ultralytics argument" + (f" (did you mean {close[0]}?)" if close else "")
            )

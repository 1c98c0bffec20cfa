"""`validate_detector`: mAP, precision, recall and speed of any detector on a data.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Validation:
    weights: str
    data: str
    split: str
    map50: float
    map50_95: float
    precision: float
    recall: float
    speed_ms: dict[str, float]  # per image: preprocess, inference, loss, postprocess

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def validate_detector(weights: Path, data: Path, *, imgsz: int = 640, batch: int = 16, device: str | None = None,
                      split: str = "val", workers: int = 2) -> Validation:
    from birdsdao.inputs import weights_file
    from birdsdao.training.checks import check_data_yaml, check_device
    from birdsdao.training.ultralytics_adapter import load_yolo

    weights = weights_file(weights)  # a wrong file fails before the dataset is scanned
    check_data_yaml(Path(data))
    check_device(device)
    metrics = load_yolo(weights, task="detect").val(
        data=str(data), imgsz=imgsz, batch=batch, device=device, split=split, workers=workers, plots=False,
        verbose=False,
    )
    box = metrics.box
    return Validation(
        weights=str(weights), data=str(data), split=split,
        map50=round(float(box.map50), 5), map50_95=round(float(box.map), 5),
        precision=round(float(box.mp), 5), recall=round(float(box.mr), 5),
        speed_ms={key: round(float(value), 3) for key, value in metrics.speed.items()},
    )

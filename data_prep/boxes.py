"""Where the bird is in each photo: the whole frame, or a COCO-trained detector's best `bird` box."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from birdsdao.errors import InvalidInputError

BOX_MODES = ("full", "detector")
# BIRDS-525 photos are crops around one bird, so a full-frame box is a fair default label.
FULL_BOX = (0.5, 0.5, 1.0, 1.0)


Box = tuple[float, float, float, float]  # normalised x_center, y_center, width, height


class BoxFinder(Protocol):
    def boxes(self, paths: list[str]) -> list[Box | None]:
        """One box per image path, None where no bird was found."""


class BirdBoxDetector:
    """Runs any ultralytics model that has a class named `bird` and keeps its most confident bird."""

    def __init__(self, weights: Path, *, conf: float = 0.25, device: str | None = None, imgsz: int = 640):
        from birdsdao.training.ultralytics_adapter import load_yolo  # heavy: only when detector boxes are asked for

        weights = Path(weights)
        self.model = load_yolo(weights, task="detect", what="a COCO detector")
        names = {int(k): str(v) for k, v in self.model.names.items()}
        birds = [k for k, v in names.items() if v.strip().lower() == "bird"]
        if not birds:
            raise InvalidInputError(
                f"{weights}: the model has no class named 'bird' (it has {len(names)} classes)",
                hint="use a COCO-trained detector such as yolov8n.pt, whose class 14 is 'bird'",
            )
        self.bird_class = birds[0]
        self.conf, self.device, self.imgsz = conf, device, imgsz

    def boxes(self, paths: list[str]) -> list[Box | None]:
        """Normalised (x_center, y_center, w, h) of the best bird per image, or None where none is found."""
        if not paths:
            return []
        results = self.model.predict(
            paths, conf=self.conf, classes=[self.bird_class], device=self.device, imgsz=self.imgsz, verbose=False
        )
        found: list[Box | None] = []
        for result in results:
            if result.boxes is None or len(result.boxes) == 0:
                found.append(None)
                continue
            best = int(result.boxes.conf.argmax())
            x, y, w, h = (float(v) for v in result.boxes.xywhn[best])
            found.append(_clip(x, y, w, h))
        return found


def _clip(x: float, y: float, w: float, h: float) -> Box:
    x1, y1 = max(0.0, x - w / 2), max(0.0, y - h / 2)
    x2, y2 = min(1.0, x + w / 2), min(1.0, y + h / 2)
    return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)

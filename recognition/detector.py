"""Find birds in a photo with an ultralytics detector (PyTorch or ONNX) and name them.

Each bird is the best box of a place in the photo; the other species the detector also saw there
(boxes of other classes over the same spot) are its candidates. A bird whose best confidence is
below `certain` is reported as uncertain, with those candidates, so that nobody describes the wrong
bird with confidence.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from birdsdao.errors import InvalidInputError, WeightsNotFoundError
from birdsdao.inputs import weights_file
from birdsdao.resources import weights_dir

WEIGHTS_DIR = weights_dir()
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"
CANDIDATE_FLOOR = 0.01  # boxes this weak still count as candidates of a bird found by a stronger one
SAME_PLACE_IOU = 0.5
BACKENDS = ("auto", "torch", "onnx")


@dataclass
class Candidate:
    species: str
    confidence: float


@dataclass
class Bird:
    species: str
    english_name: str
    chinese_name: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the upright photo
    certain: bool
    candidates: list[Candidate] = field(default_factory=list)  # best first, the bird's own species included
    detection: float | None = None  # the detector's confidence in the box, when a classifier named the bird

    def to_dict(self) -> dict:
        data = asdict(self)
        data["box"] = [round(value, 1) for value in self.box]
        data["confidence"] = round(self.confidence, 4)
        data["candidates"] = [{"species": c.species, "confidence": round(c.confidence, 4)} for c in self.candidates]
        data["detection"] = None if self.detection is None else round(self.detection, 4)
        return data


def bundled_weights(backend: str) -> Path:
    """The bundled detector of MANIFEST.json, in the backend's format."""
    if not MANIFEST.is_file():
        raise WeightsNotFoundError(
            f"{MANIFEST} is missing: this checkout has no bundled detector",
            hint="train one with `bash weights/make_detector.sh`, or pass --weights PATH",
        )
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    path = WEIGHTS_DIR / manifest["files"][backend]["path"]
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} (named in {MANIFEST}) is missing")
    return path


def resolve_weights(weights: str | Path | None, backend: str) -> tuple[Path, str]:
    """The weights file and the backend that runs it; `auto` is ONNX for the bundled detector and for .onnx files."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"--backend {backend!r}: choose auto, torch or onnx")
    if weights is None:
        backend = "onnx" if backend == "auto" else backend
        return bundled_weights(backend), backend
    path = weights_file(weights)
    if backend == "auto":
        backend = "onnx" if path.suffix == ".onnx" else "torch"
    if backend == "onnx" and path.suffix != ".onnx":
        sibling = path.with_suffix(".onnx")
        if not sibling.is_file():
            raise WeightsNotFoundError(f"{sibling} is missing for --backend onnx",
                                       hint=f"export it with `birds export {path} --format onnx`")
        path = weights_file(sibling)
    if backend == "torch" and path.suffix == ".onnx":
        raise InvalidInputError(f"{path} is an ONNX file: use --backend onnx")
    return path, backend


def open_detector(weights: str | Path | None = None, backend: str = "auto", imgsz: int | None = None,
                  device: str = "cpu"):
    """A detector for `birds identify`: ONNX in onnxruntime (fast to start), or the checkpoint in ultralytics."""
    path, backend = resolve_weights(weights, backend)
    if backend == "onnx" and device in ("cpu", ""):
        from birdsdao.recognition.onnx_detector import OnnxDetector

        return OnnxDetector(path, imgsz)
    return Detector(path, backend=backend, imgsz=imgsz, device=device)


class Detector:
    """A detector run by ultralytics: any checkpoint it loads, or an ONNX file on a GPU."""

    def __init__(self, weights: str | Path | None = None, backend: str = "torch", imgsz: int | None = None,
                 device: str = "cpu"):
        from birdsdao.training.ultralytics_adapter import load_yolo

        self.path, self.backend = resolve_weights(weights, backend)
        self.device = device
        self.yolo = load_yolo(self.path, task="detect")
        self.names: dict[int, str] = dict(self.yolo.names)
        trained = (getattr(self.yolo, "overrides", None) or {}).get("imgsz")
        trained = trained if isinstance(trained, int) else _onnx_imgsz(self.path) if backend == "onnx" else None
        self.imgsz = imgsz or trained or (_manifest_imgsz() if weights is None else None) or 640
        from birdsdao.species_cards import card_names

        self._cards = card_names()

    def detect(self, image, conf: float = 0.25, iou: float = 0.7, certain: float = 0.5) -> list[Bird]:
        """Birds in one RGB PIL image, most confident first."""
        import numpy as np

        from birdsdao.training.ultralytics_adapter import output_on_stderr

        if not 0 < conf <= 1 or not 0 <= certain <= 1:
            raise InvalidInputError("--conf must be in (0, 1] and --certain in [0, 1]")
        bgr = np.asarray(image)[:, :, ::-1]  # ultralytics reads arrays as OpenCV does
        with output_on_stderr():
            result = self.yolo.predict(bgr, conf=min(conf, CANDIDATE_FLOOR), iou=iou, imgsz=self.imgsz,
                                       device=self.device, verbose=False, max_det=100)[0]
        boxes = [(tuple(map(float, xyxy)), float(score), self.names[int(cls)]) for xyxy, score, cls in zip(
            result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True)]
        return [self._bird(group, certain) for group in group_boxes(boxes) if group[0][1] >= conf]

    def _bird(self, group, certain: float) -> Bird:
        return make_bird(group, self._cards, certain)


def make_bird(group: list, cards: dict[str, tuple[str, str]], certain: float,
              also: dict[str, float] | None = None) -> Bird:
    """A bird from its group of boxes (best first): the best three species seen there are its candidates,
    with `also` (other class scores of the best box itself, when the backend gives them)."""
    box, score, species = group[0]
    best: dict[str, float] = dict(also or {})
    for _, other_score, other in group:
        best[other] = max(best.get(other, 0.0), other_score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    candidates = [Candidate(name, value) for name, value in ranked if value >= CANDIDATE_FLOOR][:3]
    english, chinese = cards.get(species, (species.title(), ""))
    return Bird(species, english, chinese, score, tuple(map(float, box)), score >= certain, candidates)


def group_boxes(boxes: list[tuple[tuple[float, float, float, float], float, str]]) -> list[list]:
    """Boxes over the same place (IoU ≥ 0.5, any class) as one bird: its best box first, then the rest."""
    groups: list[list] = []
    for box in sorted(boxes, key=lambda item: -item[1]):
        for group in groups:
            if iou(group[0][0], box[0]) >= SAME_PLACE_IOU:
                group.append(box)
                break
        else:
            groups.append([box])
    return groups


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _onnx_imgsz(path: Path) -> int | None:
    """The square input size ultralytics wrote into an exported ONNX file's metadata."""
    import ast

    import onnx

    try:
        metadata = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
        size = ast.literal_eval(metadata.get("imgsz", "None"))
    except Exception:  # a foreign ONNX file: no size to take
        return None
    return int(size[0]) if isinstance(size, list | tuple) and size else None


def _manifest_imgsz() -> int | None:
    try:
        return int(json.loads(MANIFEST.read_text(encoding="utf-8"))["imgsz"])
    except (OSError, KeyError, ValueError):
        return None

"""The detector's ONNX export in onnxruntime, without torch or ultralytics in the process.

Importing torch and ultralytics costs about 5 s here, more than the whole `birds identify` budget
(3 s); onnxruntime, numpy and Pillow take half a second. The steps are ultralytics' own, done with
numpy: letterbox to the export size (grey 114 padding, centred), one forward pass, decode the
(4 + classes) × anchors output (centre, size, per-class sigmoid scores), class-aware NMS, and boxes
mapped back to the photo. Each box also keeps its own best other classes as the bird's candidates.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from birdsdao.errors import InvalidInputError
from birdsdao.inputs import WEIGHTS_HINT
from birdsdao.recognition.detector import CANDIDATE_FLOOR, Bird, group_boxes, make_bird
from birdsdao.recognition.ort_options import session_options
from birdsdao.species_cards import card_names

PAD_VALUE = 114


class OnnxDetector:
    backend = "onnx"

    def __init__(self, path: Path, imgsz: int | None = None):
        import onnxruntime

        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), session_options(),
                                                        providers=["CPUExecutionProvider"])
            metadata = self.session.get_modelmeta().custom_metadata_map
            self.names: dict[int, str] = ast.literal_eval(metadata.get("names", "{}"))
            exported = ast.literal_eval(metadata.get("imgsz", "[640, 640]"))
            self.imgsz = int(exported[0])
        except Exception as exc:  # onnxruntime's errors are long C++ messages; the file is what matters
            raise InvalidInputError(f"{self.path}: not an ONNX detector exported by ultralytics (no class names "
                                    "or image size in it, or onnxruntime cannot load it)", hint=WEIGHTS_HINT) from exc
        if not self.names:
            raise InvalidInputError(f"{self.path}: an ONNX model without class names, not an ultralytics detector",
                                    hint=WEIGHTS_HINT)
        if imgsz and imgsz != self.imgsz:
            raise InvalidInputError(f"{self.path} was exported for {self.imgsz} px, not --imgsz {imgsz}",
                                    hint="leave --imgsz out, or export again at that size")
        self.input_name = self.session.get_inputs()[0].name
        self._cards = card_names()

    def detect(self, image, conf: float = 0.25, iou: float = 0.7, certain: float = 0.5) -> list[Bird]:
        tensor, scale, pad = letterbox(image, self.imgsz)
        output = self.session.run(None, {self.input_name: tensor})[0][0].T  # anchors × (4 + classes)
        scores = output[:, 4:]
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(scores)), best]
        keep = best_score >= min(conf, CANDIDATE_FLOOR)
        boxes = xywh_to_xyxy(output[keep, :4])
        chosen = nms(boxes, best_score[keep], best[keep], iou)[:100]
        found = []
        for index in chosen:
            box = unletterbox(boxes[index], scale, pad, image.size)
            found.append((box, float(best_score[keep][index]), self.names[int(best[keep][index])],
                          scores[keep][index]))
        birds = []
        for group in group_boxes([(box, score, name) for box, score, name, _ in found]):
            if group[0][1] < conf:
                continue
            lead = next(item for item in found if item[0] == group[0][0] and item[1] == group[0][1])
            birds.append(self._bird(group, lead[3], certain))
        return birds

    def _bird(self, group, class_scores: np.ndarray, certain: float) -> Bird:
        top = np.argsort(-class_scores)[:3]  # what this very box also resembles
        also = {self.names[int(index)]: float(class_scores[index]) for index in top}
        return make_bird(group, self._cards, certain, also)


def letterbox(image, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The RGB image scaled to fit size × size, centred on grey: a 1 × 3 × size × size float tensor in 0..1."""
    from PIL import Image

    width, height = image.size
    scale = min(size / width, size / height)
    new_w, new_h = round(width * scale), round(height * scale)
    canvas = Image.new("RGB", (size, size), (PAD_VALUE,) * 3)
    pad = ((size - new_w) / 2, (size - new_h) / 2)
    canvas.paste(image.resize((new_w, new_h), Image.BILINEAR), (round(pad[0] - 0.1), round(pad[1] - 0.1)))
    array = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return np.ascontiguousarray(array), scale, (round(pad[0] - 0.1), round(pad[1] - 0.1))


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes)
    out[:, 0] = boxes[:, 0] - boxes[:, 2] / 2
    out[:, 1] = boxes[:, 1] - boxes[:, 3] / 2
    out[:, 2] = boxes[:, 0] + boxes[:, 2] / 2
    out[:, 3] = boxes[:, 1] + boxes[:, 3] / 2
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> list[int]:
    """Indices kept by class-aware non-maximum suppression, best first (boxes of two classes never suppress)."""
    shifted = boxes + (classes[:, None] * 7680.0)  # ultralytics' trick: classes apart in space
    order = np.argsort(-scores)
    kept: list[int] = []
    while order.size:
        first = order[0]
        kept.append(int(first))
        rest = order[1:]
        x1 = np.maximum(shifted[first, 0], shifted[rest, 0])
        y1 = np.maximum(shifted[first, 1], shifted[rest, 1])
        x2 = np.minimum(shifted[first, 2], shifted[rest, 2])
        y2 = np.minimum(shifted[first, 3], shifted[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
        overlap = inter / (area[first] + area[rest] - inter + 1e-9)
        order = rest[overlap <= threshold]
    return kept


def unletterbox(box: np.ndarray, scale: float, pad: tuple[float, float], size: tuple[int, int]) -> tuple:
    width, height = size
    x1 = float(np.clip((box[0] - pad[0]) / scale, 0, width))
    y1 = float(np.clip((box[1] - pad[1]) / scale, 0, height))
    x2 = float(np.clip((box[2] - pad[0]) / scale, 0, width))
    y2 = float(np.clip((box[3] - pad[1]) / scale, 0, height))
    return (x1, y1, x2, y2)

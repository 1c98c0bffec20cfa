"""The species classifier and bird gate of `birds identify`: a classifier folder, opened for onnxruntime or torch.

A classifier folder (written by `birds train-classifier`; the bundled one is weights/classifier/):
  classifier.json     backbone, input size and scaling, gate threshold, head kind, metrics, files
  classes.txt         one species a line, in the head's order
  head.safetensors    the linear head over the backbone's L2-normalised features: weight (C × 1280), bias (C),
                      and prototypes (C × 1280): each species' mean training feature, L2-normalised
  classifier.onnx     backbone + head + gate in one graph: 0..255 RGB batch in; species probabilities, the
                      ImageNet bird probability and the cosine similarity to the nearest prototype out
The gate needs both numbers: ImageNet's softmax calls random noise and flat colours "bird" (0.1–0.7), but
their features are far from every species' prototype (≤ 0.37, against ≥ 0.5 for held-out photos).
The ONNX path needs numpy, Pillow and onnxruntime only (a new process answers in about a second); the torch
path rebuilds the same thing from the pip-installed backbone and head.safetensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdsdao.errors import InvalidInputError, WeightsNotFoundError
from birdsdao.recognition.crops import to_input

FORMAT = "birdsdao-classifier/1"
METADATA = "classifier.json"
CLASSES = "classes.txt"
HEAD = "head.safetensors"
ONNX = "classifier.onnx"
TOP_CANDIDATES = 5


@dataclass
class ClassifierInfo:
    folder: Path
    backbone: str
    image_size: int
    classes: list[str]
    gate_threshold: float  # least ImageNet bird probability of a bird photo
    similarity_threshold: float  # least cosine similarity of its features to the nearest species prototype
    metadata: dict

    @property
    def onnx(self) -> Path:
        return self.folder / ONNX


def read_folder(folder: str | Path) -> ClassifierInfo:
    """The folder's metadata and classes, checked (head and ONNX are checked when loaded)."""
    folder = Path(folder).expanduser()
    meta_path = folder / METADATA
    if not folder.is_dir():
        raise WeightsNotFoundError(f"{folder}: no such classifier folder",
                                   hint="make one with `birds train-classifier DATA`, or pass --classifier none")
    if not meta_path.is_file():
        raise InvalidInputError(f"{folder} is not a classifier folder: it has no {METADATA}",
                                hint="make one with `birds train-classifier DATA`")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = f", line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidInputError(f"{meta_path}{line}: not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise InvalidInputError(f"{meta_path}: not a birdsdao classifier (format should be {FORMAT!r})")
    classes_path = folder / CLASSES
    if not classes_path.is_file():
        raise InvalidInputError(f"{classes_path} is missing", hint="write the folder again with train-classifier")
    classes = [line.strip() for line in classes_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        info = ClassifierInfo(folder, str(metadata["backbone"]), int(metadata["image_size"]), classes,
                              float(metadata["gate"]["threshold"]), float(metadata["gate"]["similarity"]), metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{meta_path}: lacks or garbles {exc}") from None
    if int(metadata.get("classes", len(classes))) != len(classes) or not classes:
        raise InvalidInputError(f"{classes_path} has {len(classes)} species, {METADATA} says {metadata.get('classes')}")
    return info


def read_head(info: ClassifierInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weight (C × features), bias (C) and prototypes (C × features) from head.safetensors, checked against
    the folder's backbone."""
    from safetensors import SafetensorError, safe_open

    path = info.folder / HEAD
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing", hint="write the folder again with train-classifier")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            stored = (handle.metadata() or {}).get("backbone")
            weight, bias = handle.get_tensor("weight"), handle.get_tensor("bias")
            prototypes = handle.get_tensor("prototypes")
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable head ({exc})",
                                hint="write the folder again with train-classifier") from None
    if stored != info.backbone:
        raise InvalidInputError(f"{path} was fitted on {stored} features, but {info.folder / METADATA} says "
                                f"backbone {info.backbone}: the folder mixes two classifiers",
                                hint="write the folder again with train-classifier")
    if weight.ndim != 2 or weight.shape[0] != len(info.classes) or bias.shape != (len(info.classes),) \
            or prototypes.shape != weight.shape:
        raise InvalidInputError(f"{path}: head of shape {weight.shape} does not fit {len(info.classes)} species")
    return weight.astype(np.float32), bias.astype(np.float32), prototypes.astype(np.float32)


class OnnxClassifier:
    """The folder's ONNX graph in onnxruntime: no torch in the process."""

    backend = "onnx"

    def __init__(self, info: ClassifierInfo, threads: int | None = None):
        import onnxruntime

        from birdsdao.recognition.ort_options import session_options

        self.info = info
        read_head(info)  # a damaged or foreign head means a damaged folder, even though the graph has a copy
        try:
            self.session = onnxruntime.InferenceSession(str(info.onnx), session_options(threads),
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable graphs
            raise InvalidInputError(f"{info.onnx}: not a readable ONNX model ({type(exc).__name__})",
                                    hint="write the folder again with train-classifier") from None
        exported = self.session.get_modelmeta().custom_metadata_map.get("backbone")
        if exported != info.backbone:
            raise InvalidInputError(f"{info.onnx} was exported from backbone {exported}, but "
                                    f"{info.folder / METADATA} says {info.backbone}",
                                    hint="write the folder again with train-classifier")
        outputs = self.session.get_outputs()
        if outputs[0].shape[-1] != len(info.classes):
            raise InvalidInputError(f"{info.onnx} names {outputs[0].shape[-1]} species, {CLASSES} lists "
                                    f"{len(info.classes)}")

    def classify(self, images: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Species probabilities (N × C), ImageNet bird probability (N) and nearest-prototype similarity (N)
        of RGB PIL images."""
        probs, bird, similarity = self.session.run(None, {"images": to_input(images, self.info.image_size)})
        return probs, bird, similarity


class TorchClassifier:
    """The same classifier rebuilt in torch from the pip-installed backbone and head.safetensors."""

    backend = "torch"

    def __init__(self, info: ClassifierInfo, device: str = "cpu"):
        import torch

        from birdsdao.recognition.backbone import load_backbone

        self.info = info
        weight, bias, prototypes = read_head(info)
        self.device = device
        self.model = ClassifierNet(load_backbone(info.backbone), *map(torch.from_numpy, (weight, bias, prototypes))
                                   ).to(device).eval()

    def classify(self, images: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(to_input(images, self.info.image_size)).to(self.device))
        return tuple(output.cpu().numpy() for output in outputs)


def ClassifierNet(backbone, weight, bias, prototypes):  # noqa: N802 (the torch class is made on first use)
    import torch

    class _ClassifierNet(torch.nn.Module):
        """Backbone + linear head + gate: what classifier.onnx holds."""

        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(weight)
                self.head.bias.copy_(bias)
            self.register_buffer("prototypes", prototypes.clone())

        def forward(self, images):
            features, bird = self.backbone(images)
            similarity = (features @ self.prototypes.T).max(dim=1).values
            return torch.softmax(self.head(features), dim=1), bird, similarity

    return _ClassifierNet()


def bundled_classifier() -> Path:
    from birdsdao.resources import weights_dir

    folder = weights_dir() / "classifier"
    if not (folder / METADATA).is_file():
        raise WeightsNotFoundError(f"{folder} holds no classifier: this checkout has no bundled one",
                                   hint="make it with `bash weights/make_classifier.sh`, or pass --classifier none")
    return folder


def open_classifier(choice: str | Path | None, device: str = "cpu", backend: str = "auto"):
    """The classifier `--classifier` names: a folder, or None for the bundled one. ONNX on the CPU when the
    folder has it (fast to start, no torch); torch otherwise, or when asked for."""
    info = read_folder(bundled_classifier() if choice is None else choice)
    if backend != "torch" and device in ("cpu", "") and info.onnx.is_file():
        return OnnxClassifier(info)
    return TorchClassifier(info, device=_torch_device(device))


def _torch_device(device: str) -> str:
    return "cpu" if device in ("cpu", "") else f"cuda:{device}" if device.isdigit() else device


def ranked(probs: np.ndarray, classes: list[str], k: int = TOP_CANDIDATES) -> list[tuple[str, float]]:
    """The k most probable species of one probability row, best first."""
    top = np.argsort(-probs)[:k]
    return [(classes[int(index)], float(probs[index])) for index in top]

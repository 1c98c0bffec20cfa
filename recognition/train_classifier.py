"""`birds train-classifier` as a library: a prepared dataset in, a classifier folder out.

Each labelled box of each image is cut out (with the margin identify uses), passed once through the frozen
pretrained backbone, and its L2-normalised features cached beside the dataset (DATA/.cache/), so a rerun
only reads them. Two linear heads are fitted on the train split, scikit-learn's logistic regression and a
torch linear layer; the one with the better validation top-1 is kept (log-loss breaks a tie). The folder
is built aside and renamed into place, with the ONNX export of backbone + head + gate checked against torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from birdsdao.errors import DatasetNotFoundError, InvalidInputError, OutputExistsError
from birdsdao.inputs import writable_folder
from birdsdao.recognition.classifier import CLASSES, FORMAT, HEAD, METADATA, ONNX
from birdsdao.recognition.crops import CROP_PADDING, INPUT_MEAN, INPUT_STD, padded_crop

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LR_C = 1000.0  # measured on the sample: C = 10 ranks as well but its probabilities are flat (median best
# 0.18 on right answers, so --certain 0.5 would call every bird uncertain); 1000 gives 0.76
ONNX_TOLERANCE = 1e-4
BATCH = 16
Progress = Callable[[int, int], None]


@dataclass
class Sample:
    image: Path
    label: Path
    boxes: list[tuple[int, tuple[float, float, float, float]]]  # class, (cx, cy, w, h) in 0..1
    name: str = ""  # the image's path inside the dataset: its cache entry's name, so the cache moves with it


@dataclass
class Dataset:
    root: Path
    classes: list[str]
    splits: dict[str, list[Sample]] = field(default_factory=dict)
    unlabelled: dict[str, int] = field(default_factory=dict)


def read_dataset(data: str | Path) -> Dataset:
    """data.yaml (or the folder holding it) of a YOLO dataset such as `birds prepare-data` writes."""
    import yaml

    path = Path(data).expanduser()
    yaml_path = path / "data.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        raise DatasetNotFoundError(f"{yaml_path}: no such dataset file",
                                   hint="point at the folder `birds prepare-data` wrote, or its data.yaml")
    try:
        spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise InvalidInputError(f"{yaml_path}{line}: not valid YAML") from None
    except UnicodeDecodeError:  # a photo, a checkpoint, random bytes
        raise InvalidInputError(f"{yaml_path}: not a text file, so not a dataset's data.yaml",
                                hint="point at the folder `birds prepare-data` wrote, or its data.yaml") from None
    if not isinstance(spec, dict) or "names" not in spec or "train" not in spec:
        raise InvalidInputError(f"{yaml_path}: needs `train:` and `names:` (a YOLO dataset file)")
    names = spec["names"]
    classes = [str(names[key]) for key in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    root = yaml_path.parent / str(spec.get("path") or ".")
    dataset = Dataset(root=yaml_path.parent, classes=classes)
    for split in ("train", "val"):
        if not spec.get(split):
            continue
        samples, unlabelled = _read_split(root / str(spec[split]), len(classes))
        dataset.splits[split] = samples
        dataset.unlabelled[split] = unlabelled
    if not dataset.splits.get("train"):
        raise InvalidInputError(f"{yaml_path}: the train split has no labelled image",
                                hint="each image needs a labels/…/NAME.txt with `class cx cy w h` lines")
    if str(spec.get("val")) == str(spec.get("train")):  # prepare-data's stand-in when there is no val split
        dataset.splits.pop("val", None)
    return dataset


def _read_split(images: Path, classes: int) -> tuple[list[Sample], int]:
    if not images.is_dir():
        raise DatasetNotFoundError(f"{images}: no such image folder (named in data.yaml)")
    labels = Path(str(images).replace(f"{os.sep}images", f"{os.sep}labels", 1)) if "images" in images.parts \
        else images.parent / "labels"
    samples, unlabelled = [], 0
    for image in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        label = labels / image.relative_to(images).with_suffix(".txt")
        boxes = _read_label(label, classes) if label.is_file() else []
        if boxes:
            samples.append(Sample(image, label, boxes, f"{images.name}/{image.relative_to(images).as_posix()}"))
        else:
            unlabelled += 1
    return samples, unlabelled


def _read_label(path: Path, classes: int) -> list:
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parts = line.split()
            cls, box = int(parts[0]), tuple(float(value) for value in parts[1:5])
            if len(box) != 4 or not 0 <= cls < classes:
                raise ValueError
        except (ValueError, IndexError):
            raise InvalidInputError(f"{path}, line {number}: expected `class cx cy w h` with class below "
                                    f"{classes}, got {line.strip()!r}") from None
        boxes.append((cls, box))
    return boxes


@dataclass
class Features:
    x: np.ndarray  # crops × features, L2-normalised
    y: np.ndarray  # class of each crop
    bird: np.ndarray  # ImageNet bird probability of each crop
    extracted: int = 0  # images passed through the backbone this time
    cached: int = 0  # images read from the cache


def extract_features(samples: list[Sample], backbone, cache: Path | None, progress: Progress | None = None,
                     padding: float = CROP_PADDING) -> Features:
    """Features of every labelled box; an image whose cache entry matches (same file size and time, same
    labels, backbone and margin) is not decoded again."""
    import torch

    from birdsdao.recognition.crops import to_input
    from birdsdao.recognition.photos import open_photo

    size, name = backbone.spec.image_size, backbone.spec.name
    rows: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(samples)
    todo: list[tuple[int, Path | None, str, list]] = []
    cached = 0
    for index, sample in enumerate(samples):
        key = _cache_key(sample, name, padding)
        entry = cache / f"{hashlib.sha1((sample.name or str(sample.image)).encode()).hexdigest()[:20]}.npz" \
            if cache else None
        if entry is not None and entry.is_file():
            try:
                with np.load(entry) as stored:
                    if str(stored["key"]) == key:
                        rows[index] = (stored["features"], stored["bird"])
                        cached += 1
                        continue
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is computed again
        todo.append((index, entry, key, []))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    done = cached
    if progress:
        progress(done, len(samples))
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        crops, owners = [], []
        for position, (index, _, _, _) in enumerate(chunk):
            image = open_photo(samples[index].image)
            for _, box in samples[index].boxes:
                crops.append(padded_crop(image, _to_pixels(box, image.size), padding))
                owners.append(position)
        with torch.inference_mode():
            features, bird = backbone(torch.from_numpy(to_input(crops, size)))
        features, bird = features.numpy(), bird.numpy()
        owners_array = np.array(owners)
        for position, (index, entry, key, _) in enumerate(chunk):
            mine = owners_array == position
            rows[index] = (features[mine], bird[mine])
            if entry is not None:
                partial = entry.with_name(entry.name + ".partial.npz")
                np.savez(partial, key=np.array(key), features=features[mine], bird=bird[mine])
                os.replace(partial, entry)
        done += len(chunk)
        if progress:
            progress(done, len(samples))
    x = np.concatenate([row[0] for row in rows]).astype(np.float32)
    bird = np.concatenate([row[1] for row in rows]).astype(np.float32)
    y = np.array([cls for sample in samples for cls, _ in sample.boxes], dtype=np.int64)
    return Features(x, y, bird, extracted=len(todo), cached=cached)


def _cache_key(sample: Sample, backbone: str, padding: float) -> str:
    stat = sample.image.stat()
    boxes = ";".join(" ".join(f"{value:.6f}" for value in box) for _, box in sample.boxes)  # not the classes
    return f"{backbone}|{padding}|{stat.st_size}|{stat.st_mtime_ns}|{boxes}"


def _to_pixels(box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    cx, cy, w, h = box
    width, height = size
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


# ---- heads ----------------------------------------------------------------------------------------------


@dataclass
class Head:
    kind: str
    weight: np.ndarray  # classes × features
    bias: np.ndarray
    prototypes: np.ndarray | None = None  # classes × features: the gate's mean feature of each species

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        logits = x @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int) -> Head:
    """scikit-learn's multinomial logistic regression (L2, C = LR_C), its coefficients laid out over all classes
    (a class with no training crop gets −inf-like bias: it is never predicted)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=LR_C, max_iter=3000)
    model.fit(x, y)
    weight = np.zeros((classes, x.shape[1]), dtype=np.float32)
    bias = np.full(classes, -1e4, dtype=np.float32)
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: its softmax is the logistic
        weight[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0] / 2, model.intercept_[0] / 2
        weight[model.classes_[0]], bias[model.classes_[0]] = -model.coef_[0] / 2, -model.intercept_[0] / 2
    else:
        weight[model.classes_] = model.coef_
        bias[model.classes_] = model.intercept_
    return Head("logistic-regression", weight, bias)


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, seed: int = 0) -> Head:
    """A torch linear layer fitted full-batch with Adam on cross-entropy. No weight decay and no label smoothing:
    on the sample both cost probability where it is deserved (median best 0.27 instead of 0.91 on right
    answers) and no top-1."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], classes)
    with torch.no_grad():
        layer.weight.normal_(0, 0.01, generator=generator)
        layer.bias.zero_()
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(layer(inputs), targets).backward()
        optimizer.step()
    return Head("torch-linear", layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())


HEADS = {"logistic-regression": fit_logistic, "torch-linear": fit_linear}


def scores(head: Head, x: np.ndarray, y: np.ndarray) -> dict:
    probs = head.probabilities(x)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    log_loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return {"top1": round(float((top5[:, 0] == y).mean()), 4),
            "top5": round(float((top5 == y[:, None]).any(1).mean()), 4),
            "log_loss": round(log_loss, 4), "crops": int(len(y))}


def confused_pairs(head: Head, x: np.ndarray, y: np.ndarray, classes: list[str], k: int = 5) -> list[dict]:
    predicted = head.probabilities(x).argmax(axis=1)
    pairs = Counter((int(t), int(p)) for t, p in zip(y, predicted, strict=True) if t != p)
    return [{"true": classes[t], "predicted": classes[p], "count": n} for (t, p), n in pairs.most_common(k)]


# ---- the folder -----------------------------------------------------------------------------------------


def prototypes(x: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    """Each species' mean feature, L2-normalised (zero for a species with no crop: it matches nothing)."""
    means = np.zeros((classes, x.shape[1]), dtype=np.float32)
    np.add.at(means, y, x)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return np.where(norms > 0, means / np.maximum(norms, 1e-12), 0).astype(np.float32)


def export_onnx(backbone, head: Head, path: Path, check_images: np.ndarray) -> float:
    """classifier.onnx of backbone + head + gate; the largest difference from torch on `check_images`,
    which must stay within ONNX_TOLERANCE."""
    import io
    import warnings

    import onnx
    import onnxruntime
    import torch

    from birdsdao.recognition.classifier import ClassifierNet

    model = ClassifierNet(backbone, *map(torch.from_numpy, (head.weight, head.bias, head.prototypes))).eval()
    size = backbone.spec.image_size
    buffer = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and constant-folding notes
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buffer, dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["species", "bird", "similarity"],
                          dynamic_axes={name: {0: "batch"} for name in ("images", "species", "bird", "similarity")})
        expected = [out.numpy() for out in model(torch.from_numpy(check_images))]
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in {"backbone": backbone.spec.name, "image_size": str(size),
                       "input": f"RGB 0..255, N x 3 x {size} x {size}; scaled inside as (x - 127) / 128",
                       "outputs": "species: softmax over classes.txt; bird: ImageNet bird classes' probability; "
                                  "similarity: cosine similarity to the nearest species prototype"
                       }.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": check_images})
    difference = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
    if difference > ONNX_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from torch by {difference:.2e} (> {ONNX_TOLERANCE})")
    return difference


def write_folder(out: Path, overwrite: bool, build: Callable[[Path], None]) -> None:
    """`build` fills a fresh folder beside OUT; it then takes OUT's place in one rename."""
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists", hint="pass --overwrite to replace it, or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        build(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def train_classifier(data: str | Path, out: str | Path, backbone_name: str = "lite0", fit_all: bool = False,
                     overwrite: bool = False, cache: bool = True, progress: Progress | None = None,
                     gate_threshold: float | None = None) -> dict:
    """Fit a species head on a prepared dataset and write the classifier folder; returns the report."""
    from safetensors.numpy import save_file

    from birdsdao.recognition.backbone import GATE_THRESHOLD, SIMILARITY_THRESHOLD, backbone_spec, load_backbone

    backbone_spec(backbone_name)  # a bad name fails before anything is read
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        write_folder(out, overwrite, lambda _: None)  # raises OutputExistsError before the slow work
    writable_folder(out, "the classifier folder (--out)")  # not after the features are extracted
    started = time.perf_counter()
    dataset = read_dataset(data)
    backbone = load_backbone(backbone_name)
    cache_dir = dataset.root / ".cache" / f"features-{backbone_name}" if cache else None
    splits = {name: samples for name, samples in dataset.splits.items()}
    everything = [sample for samples in splits.values() for sample in samples]
    features_all = extract_features(everything, backbone, cache_dir, progress)
    features: dict[str, Features] = {}
    offset = 0
    for name, samples in splits.items():
        crops = sum(len(sample.boxes) for sample in samples)
        features[name] = Features(features_all.x[offset:offset + crops], features_all.y[offset:offset + crops],
                                  features_all.bird[offset:offset + crops])
        offset += crops
    extract_seconds = time.perf_counter() - started
    classes = len(dataset.classes)
    train, val = features["train"], features.get("val")
    heads = {kind: fit(train.x, train.y, classes) for kind, fit in HEADS.items()}
    judged_on = val if val is not None else train
    head_scores = {kind: scores(head, judged_on.x, judged_on.y) for kind, head in heads.items()}
    chosen = max(heads, key=lambda kind: (head_scores[kind]["top1"], -head_scores[kind]["log_loss"]))
    metrics = {"val": head_scores[chosen] if val is not None else None,
               "train": scores(heads[chosen], train.x, train.y)}
    confused = confused_pairs(heads[chosen], val.x, val.y, dataset.classes) if val is not None else []
    final = heads[chosen]
    fitted = (train.x, train.y)
    if fit_all and val is not None:
        fitted = (np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]))
        final = HEADS[chosen](*fitted, classes)
    final.prototypes = prototypes(*fitted, classes)
    threshold = GATE_THRESHOLD if gate_threshold is None else gate_threshold
    spec = backbone.spec
    check = _check_images(everything[:4], spec.image_size)
    report = {
        "classifier": str(out), "backbone": spec.name, "backbone_model": spec.model_name,
        "backbone_package": spec.package, "head": chosen,
        "fit_on": "train+val" if fit_all and val is not None else "train",
        "classes": classes, "dataset": str(dataset.root),
        "images": {name: len(samples) for name, samples in splits.items()},
        "unlabelled_images": dataset.unlabelled,
        "heads_on_val" if val is not None else "heads_on_train": head_scores,
        "metrics": metrics, "confused": confused,
        "features": {"extracted": features_all.extracted, "cached": features_all.cached,
                     "seconds": round(extract_seconds, 1)},
    }

    def build(folder: Path) -> None:
        save_file({"weight": final.weight.astype(np.float32), "bias": final.bias.astype(np.float32),
                   "prototypes": final.prototypes},
                  str(folder / HEAD), metadata={"backbone": spec.name, "kind": chosen})
        (folder / CLASSES).write_text("".join(f"{name}\n" for name in dataset.classes), encoding="utf-8")
        difference = export_onnx(backbone, final, folder / ONNX, check)
        report["onnx"] = {"path": str(out / ONNX), "bytes": (folder / ONNX).stat().st_size,
                          "max_abs_difference_from_torch": difference}
        metadata = {
            "format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "backbone": spec.name, "backbone_model": spec.model_name, "backbone_package": spec.package,
            "image_size": spec.image_size,
            "input": {"color": "RGB", "range": "0..255", "resize": f"stretched to {spec.image_size} x "
                      f"{spec.image_size}", "scaling": f"(x - {INPUT_MEAN:g}) / {INPUT_STD:g}, inside the model"},
            "features": "global average pool, L2-normalised", "crop_padding": CROP_PADDING,
            "classes": classes, "head": {"kind": chosen, "fit_on": report["fit_on"]},
            "gate": {"threshold": threshold, "similarity": SIMILARITY_THRESHOLD,
                     "source": "ImageNet bird classes' summed softmax probability, and the cosine similarity of "
                               "the features to the nearest species prototype (both must reach their threshold)"},
            "metrics": metrics, "heads_on_val": head_scores if val is not None else None, "confused": confused,
            "onnx_check": {"max_abs_difference_from_torch": difference, "tolerance": ONNX_TOLERANCE},
            "files": {"head": HEAD, "classes": CLASSES, "onnx": ONNX},
        }
        (folder / METADATA).write_text(json.dumps(metadata, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    write_folder(out, overwrite, build)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _check_images(samples: list[Sample], size: int) -> np.ndarray:
    """Real crops for the ONNX check (random pixels would not exercise the gate's softmax the same way)."""
    from birdsdao.recognition.crops import to_input
    from birdsdao.recognition.photos import open_photo

    crops = []
    for sample in samples:
        image = open_photo(sample.image)
        crops.append(padded_crop(image, _to_pixels(sample.boxes[0][1], image.size)))
    return to_input(crops, size)

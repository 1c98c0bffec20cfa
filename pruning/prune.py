"""`prune_detector`: network-slimming channel pruning of a YOLOv8 checkpoint, saved so `YOLO(path)` uses it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from birdsdao.errors import InvalidInputError
from birdsdao.inputs import writable_folder


@dataclass
class PruneConfig:
    weights: Path
    keep: float = 0.8
    min_channels: int = 8
    round_to: int = 8  # a multiple of 8 keeps onnxruntime's blocked CPU convolutions (docs/pruning.md)
    out: Path | None = None  # folder; default: next to the weights, pruned-keep<keep>
    onnx: bool = False
    imgsz: int = 640  # for GFLOPs and the ONNX export

    def validate(self) -> None:
        if not 0.0 < self.keep <= 1.0:
            raise InvalidInputError(f"--keep must be in (0, 1], not {self.keep}")
        if self.min_channels < 1:
            raise InvalidInputError(f"--min-channels must be at least 1, not {self.min_channels}")
        if self.round_to not in (1, 8, 16):
            raise InvalidInputError(f"--round-to must be 1, 8 or 16, not {self.round_to}")

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.weights).parent / f"pruned-keep{self.keep:g}"


@dataclass
class PruneReport:
    source: str
    weights: str  # the pruned checkpoint
    keep: float
    min_channels: int
    round_to: int
    threshold: float
    prunable_channels: int
    removed_channels: int
    removed_share_of_prunable: float
    removed_share_of_all_bn: float
    params_before: int
    params_after: int
    gflops_before: float
    gflops_after: float
    layers: list[dict[str, object]]  # name, before, after
    exact_folds: int
    approximate_folds: list[str]  # consumers where removed channels' constants are exact only off the borders
    chart: str
    onnx: dict[str, object] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def load_detector(weights: Path, *, require_batchnorm: bool = True):
    """An ultralytics YOLO detector from a local file (with its BatchNorms, unless told otherwise)."""
    from birdsdao.training.ultralytics_adapter import load_yolo

    weights = Path(weights)
    yolo = load_yolo(weights, task=None)
    if yolo.task != "detect":
        raise InvalidInputError(f"{weights}: a {yolo.task} model; birds prune handles detectors")
    if require_batchnorm and not any(isinstance(m, nn.BatchNorm2d) for m in yolo.model.modules()):
        raise InvalidInputError(f"{weights}: the model has no BatchNorm layers (fused?), nothing to prune by")
    return yolo


def prune_detector(config: PruneConfig) -> PruneReport:
    from birdsdao.pruning.surgery import apply_plan, check_supported
    from birdsdao.training.channel_plan import keep_indices, plan_channels

    config.validate()
    writable_folder(config.out_dir(), "the output folder (--out)")  # before the work, not after it
    yolo = load_detector(config.weights)
    model = yolo.model.float().eval()
    check_supported(model)
    before = _bn_widths(model)
    params_before, gflops_before = _size(model, config.imgsz)
    plan = plan_channels(model, config.keep, config.min_channels, config.round_to)
    log = apply_plan(model, keep_indices(model, plan))
    after = _bn_widths(model)
    params_after, gflops_after = _size(model, config.imgsz)

    out_dir = config.out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = [{"name": name, "before": before[name], "after": after[name]} for name in before]
    report = PruneReport(
        source=str(config.weights), weights=str(out_dir / "pruned.pt"), keep=config.keep,
        min_channels=config.min_channels, round_to=config.round_to, threshold=plan.threshold,
        prunable_channels=plan.prunable_channels, removed_channels=plan.removed_channels,
        removed_share_of_prunable=round(plan.removed_share_of_prunable, 4),
        removed_share_of_all_bn=round(plan.removed_share_of_all, 4),
        params_before=params_before, params_after=params_after,
        gflops_before=round(gflops_before, 3), gflops_after=round(gflops_after, 3),
        layers=layers, exact_folds=log.exact_folds, approximate_folds=log.approximate_folds,
        chart=str(out_dir / "channels.png"),
    )
    if log.approximate_folds:
        report.warnings.append(
            f"{len(log.approximate_folds)} consumers of removed channels are padded k×k convolutions: the removed "
            "channels' constant output is folded in exactly except along the image borders"
        )
    save_pruned(yolo, model, Path(report.weights), report.to_dict())
    _plot_channels(layers, Path(report.chart), config.keep)
    if config.onnx:
        # from the saved file, so the check also covers the checkpoint's round trip
        report.onnx = export_onnx_checked(load_detector(Path(report.weights)), config.imgsz)
    _write_json(out_dir / "prune_report.json", report.to_dict())
    return report


def save_pruned(yolo, model: nn.Module, path: Path, pruning: dict[str, object]) -> None:
    """A checkpoint `YOLO(path)` loads as it is, with the pruning it went through (all but the per-layer table)."""
    from birdsdao.training.ultralytics_adapter import save_checkpoint

    for parameter in model.parameters():
        parameter.requires_grad_(True)
    save_checkpoint(path, model, dict((yolo.ckpt or {}).get("train_args", {}), model=str(path)),
                    birds_pruning={key: value for key, value in pruning.items() if key != "layers"})


def export_onnx_checked(yolo, imgsz: int) -> dict[str, object]:
    """Export a loaded YOLO to ONNX, run it in onnxruntime and PyTorch on one input, report the largest difference."""
    import copy

    import numpy as np
    import onnxruntime

    model = copy.deepcopy(yolo.model).float().eval()  # the exporter fuses its model; compare with the original
    exported = yolo.export(format="onnx", imgsz=imgsz, simplify=False, verbose=False)
    sample = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(sample)[0].numpy()
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: sample.numpy()})[0]
    if got.shape != expected.shape:
        raise InvalidInputError(f"{exported}: ONNX output {got.shape} differs from PyTorch's {expected.shape}")
    difference = float(np.abs(got - expected).max())
    return {"path": str(exported), "imgsz": imgsz, "max_abs_diff": difference,
            "max_abs_output": float(np.abs(expected).max())}


def _bn_widths(model: nn.Module) -> dict[str, int]:
    return {name: m.num_features for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def _size(model: nn.Module, imgsz: int) -> tuple[int, float]:
    from birdsdao.training.ultralytics_adapter import gflops, parameter_count

    return parameter_count(model), gflops(model, imgsz)


def _plot_channels(layers: list[dict[str, object]], path: Path, keep: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = range(len(layers))
    figure, axis = plt.subplots(figsize=(max(8.0, len(layers) * 0.18), 4.5), dpi=100)
    axis.bar(positions, [layer["before"] for layer in layers], color="lightgray", label="before")
    axis.bar(positions, [layer["after"] for layer in layers], color="tab:green", label="after")
    axis.set_xticks(list(positions), [str(layer["name"]).removeprefix("model.").removesuffix(".bn")
                                      for layer in layers], rotation=90, fontsize=6)
    axis.set_ylabel("channels")
    axis.set_title(f"Channels per BatchNorm layer, --keep {keep:g}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

"""Channel pruning: exactness, every YOLOv8 size and class count, and a fine-tune that stays pruned."""

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from birdsdao.errors import InvalidInputError
from birdsdao.pruning.prune import PruneConfig, prune_detector
from birdsdao.pruning.surgery import apply_plan
from birdsdao.training.channel_plan import prunable_batchnorms

pytestmark = pytest.mark.slow


def random_detector(size: str = "n", nc: int = 80, seed: int = 0) -> nn.Module:
    """A YOLOv8 from its yaml with BatchNorm statistics and scales spread out, as after training."""
    from ultralytics import YOLO

    torch.manual_seed(seed)
    model = YOLO(f"yolov8{size}.yaml").model if nc == 80 else _with_classes(size, nc)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.05, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.float().eval()


def _with_classes(size: str, nc: int) -> nn.Module:
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(f"yolov8{size}.yaml", nc=nc, verbose=False)


def silence(model, layer_names, *, beta):
    """Set γ = 0 (and β as asked) on a quarter of the channels of each named BatchNorm; return what stays."""
    layers = prunable_batchnorms(model)
    generator = torch.Generator().manual_seed(1)
    keep = {}
    for name in layer_names:
        bn = layers[name]
        order = torch.randperm(bn.num_features, generator=generator)
        removed, kept = order[: bn.num_features // 4], order[bn.num_features // 4:]
        bn.weight.data[removed] = 0.0
        bn.bias.data[removed] = 0.0 if beta == 0 else torch.linspace(-0.8, 0.8, len(removed))
        keep[name] = kept.sort().values
    return keep


def outputs(model, sample):
    with torch.no_grad():
        return model(sample)[0]


def test_removing_silent_channels_changes_nothing():
    model = random_detector()
    keep = silence(model, list(prunable_batchnorms(model)), beta=0)
    sample = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    before = outputs(model, sample)
    params = sum(p.numel() for p in model.parameters())
    apply_plan(model, keep)
    assert sum(p.numel() for p in model.parameters()) < 0.8 * params
    torch.testing.assert_close(outputs(model, sample), before, atol=1e-4, rtol=0)


def test_constant_channels_are_folded_exactly_into_1x1_consumers():
    model = random_detector()
    # SPPF's cv1 feeds only its 1x1 cv2 (through max-pooling); layer 12's output feeds only 1x1 C2f inputs
    keep = silence(model, ["model.9.cv1.bn", "model.12.cv2.bn"], beta="nonzero")
    sample = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    before = outputs(model, sample)
    log = apply_plan(model, keep)
    assert log.approximate_folds == [] and log.exact_folds == 3
    torch.testing.assert_close(outputs(model, sample), before, atol=1e-4, rtol=0)


def test_folds_into_padded_convolutions_are_reported():
    model = random_detector()
    unfolded = copy.deepcopy(model)
    keep = silence(model, ["model.2.m.0.cv1.bn"], beta="nonzero")  # feeds a 3x3 conv with padding
    silence(unfolded, ["model.2.m.0.cv1.bn"], beta="nonzero")
    sample = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))

    def block_output(network):  # the first C2f's output: its bottleneck holds the pruned channels
        with torch.no_grad():
            return network.model[2](network.model[1](network.model[0](sample)))

    before = block_output(model)
    log = apply_plan(model, keep)
    assert log.approximate_folds == ["model.2.m.0.cv2.conv"]
    folded_error = (block_output(model) - before).abs()
    # dropping the channels without the fold: what the removed constants would have cost
    for module in prunable_batchnorms(unfolded).values():
        module.bias.data[module.weight.data == 0] = 0.0
    dropped_error = (block_output(unfolded) - before).abs()
    assert folded_error[..., 1:-1, 1:-1].max() < 1e-4  # exact away from the borders
    assert folded_error.max() < dropped_error.max()


@pytest.mark.parametrize(("size", "keep", "nc"), [("n", 0.5, 1), ("n", 0.8, 7), ("s", 0.5, 7), ("s", 0.8, 1)])
def test_pruned_checkpoints_load_predict_and_export(tmp_path, size, keep, nc):
    from ultralytics import YOLO

    weights = save_detector(random_detector(size, nc), tmp_path / f"v8{size}.pt", nc)
    report = prune_detector(PruneConfig(weights=weights, keep=keep, imgsz=64, onnx=True, out=tmp_path / "out"))
    assert report.params_after < report.params_before and report.gflops_after < report.gflops_before
    assert 0 < report.removed_channels < report.prunable_channels
    assert report.onnx["max_abs_diff"] < 1e-3 * max(1.0, report.onnx["max_abs_output"])
    loaded = YOLO(report.weights)
    assert sum(p.numel() for p in loaded.model.parameters()) == report.params_after
    assert len(loaded.names) == nc
    result = loaded.predict(torch.rand(1, 3, 64, 64), imgsz=64, verbose=False)[0]
    assert result.boxes is not None
    written = json.loads((tmp_path / "out" / "prune_report.json").read_text())
    assert written["params_after"] == report.params_after
    assert (tmp_path / "out" / "channels.png").read_bytes()[:4] == b"\x89PNG"


def save_detector(model: nn.Module, path: Path, nc: int) -> Path:
    import ultralytics

    model.names = {i: f"species {i}" for i in range(nc)}
    model.args = {"task": "detect", "imgsz": 64}
    torch.save({"model": model, "ema": None, "version": ultralytics.__version__, "train_args": {}}, path)
    return path


def test_min_channels_and_round_to_hold_in_every_layer(tmp_path):
    weights = save_detector(random_detector(), tmp_path / "v8n.pt", 80)
    report = prune_detector(PruneConfig(weights=weights, keep=0.3, min_channels=16, round_to=8, imgsz=64))
    for layer in report.layers:
        if layer["after"] != layer["before"]:
            assert layer["after"] % 8 == 0 and layer["after"] >= 16, layer


def test_default_widths_are_multiples_of_8_in_library_and_cli(tmp_path):
    import inspect

    from birdsdao.training.channel_plan import DEFAULT_ROUND_TO
    from birdsdao_cli.commands.prune import prune

    # onnxruntime keeps its blocked convolutions only for multiples of 8 (docs/pruning.md)
    assert inspect.signature(prune).parameters["round_to"].default == PruneConfig.round_to == DEFAULT_ROUND_TO == 8
    weights = save_detector(random_detector(), tmp_path / "v8n.pt", 80)
    report = prune_detector(PruneConfig(weights=weights, keep=0.5, imgsz=64))
    changed = [layer for layer in report.layers if layer["after"] != layer["before"]]
    assert report.round_to == 8 and len(changed) > 10
    assert all(layer["after"] % 8 == 0 for layer in changed), changed


def test_bad_prune_input(tmp_path):
    from ultralytics import YOLO

    weights = save_detector(random_detector(), tmp_path / "v8n.pt", 80)
    with pytest.raises(InvalidInputError, match=r"--keep must be in \(0, 1\]"):
        prune_detector(PruneConfig(weights=weights, keep=1.5))
    with pytest.raises(InvalidInputError, match="--round-to"):
        prune_detector(PruneConfig(weights=weights, round_to=3))
    classifier = tmp_path / "cls.pt"
    YOLO("yolov8n-cls.yaml").save(str(classifier))
    with pytest.raises(InvalidInputError, match="classify model"):
        prune_detector(PruneConfig(weights=classifier))
    fused = random_detector().fuse()
    save_detector(fused, tmp_path / "fused.pt", 80)
    with pytest.raises(InvalidInputError, match="no BatchNorm"):
        prune_detector(PruneConfig(weights=tmp_path / "fused.pt"))

import pytest
import torch
from torch import nn

from birdsdao.training.channel_plan import plan_channels, prunable_batchnorms


@pytest.fixture(scope="module")
def yolov8n():
    from ultralytics import YOLO

    return YOLO("yolov8n.yaml").model


def test_tied_outputs_are_not_prunable(yolov8n):
    names = set(prunable_batchnorms(yolov8n))
    assert "model.2.cv1.bn" not in names  # C2f split halves
    assert "model.2.m.0.cv2.bn" not in names  # residual bottleneck (backbone, add=True)
    assert "model.2.m.0.cv1.bn" in names
    assert "model.12.m.0.cv2.bn" in names  # neck bottlenecks have no shortcut
    assert "model.2.cv2.bn" in names and "model.22.cv2.0.0.bn" in names
    # the Detect head's last convs carry no BatchNorm: its outputs can never be touched
    assert not any(name.startswith(("model.22.cv2.0.2", "model.22.cv3.0.2")) for name in names)


def set_gammas(model, values_for):
    for name, bn in prunable_batchnorms(model).items():
        bn.weight.data = values_for(name, bn.num_features)


def test_global_threshold_keeps_the_share_and_the_minimum(yolov8n):
    generator = torch.Generator().manual_seed(0)
    set_gammas(yolov8n, lambda name, n: torch.rand(n, generator=generator))
    plan = plan_channels(yolov8n, keep=0.7, min_channels=8)
    assert plan.prunable_channels == sum(bn.num_features for bn in prunable_batchnorms(yolov8n).values())
    kept = sum(plan.kept_per_layer.values())
    assert kept == plan.prunable_channels - plan.removed_channels
    assert kept >= round(0.7 * plan.prunable_channels)  # the per-layer minimum can only keep more
    assert all(count >= 8 for count in plan.kept_per_layer.values())
    assert plan.removed_share_of_all < plan.removed_share_of_prunable


def test_collapsed_layer_keeps_its_minimum(yolov8n):
    set_gammas(yolov8n, lambda name, n: torch.zeros(n) if name == "model.21.cv2.bn" else torch.ones(n))
    plan = plan_channels(yolov8n, keep=0.9, min_channels=8)
    assert plan.kept_per_layer["model.21.cv2.bn"] == 8
    assert plan.layers_at_minimum == 1
    assert plan.removed_channels == prunable_batchnorms(yolov8n)["model.21.cv2.bn"].num_features - 8


def test_keep_everything_and_bad_keep():
    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.BatchNorm2d(16))
    assert plan_channels(net, keep=1.0).removed_channels == 0
    with pytest.raises(ValueError):
        plan_channels(net, keep=0.0)

"""Which channels a global |γ| threshold removes: the selection half of network slimming.

It lives beside the sparsity training that makes those channels useless: `birds train` previews plans with it
and `birdsdao.pruning` applies them, so pruning depends on training and never the other way round.

A channel can go only where its BatchNorm output feeds layers that can drop an input channel.
Three kinds of output are tied to something else and stay whole:
  * the first conv of a C2f / C3k2 / C3 block (`cv1`): its output is split in halves, or feeds a
    chain of residual bottlenecks, so its width is fixed by the block;
  * the second conv of a residual Bottleneck (`add`): it is summed with the bottleneck's input;
  * anything inside attention blocks (C2PSA and friends), whose head sizes fix the widths.
The Detect head's final 1x1 convs have no BatchNorm, so the outputs stay whole by construction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

_SPLIT_BLOCKS = {"C2f", "C3k2", "C3", "C3k", "C2fAttn", "C3x", "RepC3", "C2"}
_ATTENTION_BLOCKS = {"C2PSA", "PSA", "PSABlock", "Attention", "AAttn", "ABlock", "A2C2f"}


def prunable_batchnorms(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """BatchNorm layers (by module name) whose channels a global threshold may remove."""
    tied: set[str] = set()
    for name, module in model.named_modules():
        kind = type(module).__name__
        prefix = f"{name}." if name else ""
        if kind in _ATTENTION_BLOCKS:
            tied.update(f"{prefix}{sub}" for sub, child in module.named_modules() if isinstance(child, nn.BatchNorm2d))
        elif kind in _SPLIT_BLOCKS and hasattr(module, "cv1"):
            tied.add(f"{prefix}cv1.bn")
        elif kind in ("Bottleneck", "SPPF") and getattr(module, "add", False):
            tied.add(f"{prefix}cv2.bn")  # summed with the block's input
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.BatchNorm2d) and name not in tied
    }


@dataclass
class ChannelPlan:
    keep: float
    min_channels: int
    round_to: int
    threshold: float
    prunable_channels: int
    removed_channels: int
    all_bn_channels: int
    layers_at_minimum: int
    kept_per_layer: dict[str, int]

    @property
    def removed_share_of_prunable(self) -> float:
        return self.removed_channels / max(self.prunable_channels, 1)

    @property
    def removed_share_of_all(self) -> float:
        return self.removed_channels / max(self.all_bn_channels, 1)

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "removed_share_of_prunable": round(self.removed_share_of_prunable, 4),
            "removed_share_of_all": round(self.removed_share_of_all, 4),
        }


# onnxruntime's CPU convolutions use their blocked layout (NCHWc, 8 channels a block with AVX2) only for
# widths that are multiples of the block: rounding up to 8 made pruned detectors faster there (docs/pruning.md)
DEFAULT_ROUND_TO = 8


def plan_channels(model: nn.Module, keep: float, min_channels: int = 8,
                  round_to: int = DEFAULT_ROUND_TO) -> ChannelPlan:
    """One global threshold on |γ| that keeps `keep` of the prunable channels.

    Each layer keeps at least `min_channels` (or all it has), and its count is rounded up to a
    multiple of `round_to` (8 suits onnxruntime's CPU kernels and GPU kernels), never beyond what it has.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], not {keep}")
    if min_channels < 1 or round_to < 1:
        raise ValueError("min_channels and round_to must be at least 1")
    layers = prunable_batchnorms(model)
    all_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    if not layers:
        return ChannelPlan(keep, min_channels, round_to, 0.0, 0, 0, all_channels, 0, {})
    gammas = {name: bn.weight.detach().abs().float().cpu() for name, bn in layers.items()}
    pooled = torch.cat(list(gammas.values()))
    keep_count = max(1, math.ceil(keep * pooled.numel()))
    threshold = float(torch.topk(pooled, keep_count).values[-1])
    kept_per_layer, at_minimum = {}, 0
    for name, gamma in gammas.items():
        kept = int((gamma >= threshold).sum())
        floor = min(min_channels, gamma.numel())
        if kept < floor:
            kept, at_minimum = floor, at_minimum + 1
        kept_per_layer[name] = min(gamma.numel(), math.ceil(kept / round_to) * round_to)
    removed = int(pooled.numel() - sum(kept_per_layer.values()))
    return ChannelPlan(keep, min_channels, round_to, threshold, int(pooled.numel()), removed, all_channels,
                       at_minimum, kept_per_layer)


def keep_indices(model: nn.Module, plan: ChannelPlan) -> dict[str, torch.Tensor]:
    """The channels each layer keeps under `plan`: its largest |γ|, in their original order."""
    layers = prunable_batchnorms(model)
    chosen = {}
    for name, count in plan.kept_per_layer.items():
        gamma = layers[name].weight.detach().abs().float()
        chosen[name] = torch.topk(gamma, count).indices.sort().values
    return chosen

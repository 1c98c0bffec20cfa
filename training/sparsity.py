"""Network slimming's L1 penalty on BatchNorm scales, and the statistics that show its effect.

Pure torch: nothing here knows about ultralytics, so it is tested on any module.
"""

from __future__ import annotations

import torch
from torch import nn

NEAR_ZERO = (1e-2, 1e-3)


def l1_lambda(epoch: int, epochs: int, base: float, decay: float = 0.9) -> float:
    """The penalty in force during `epoch` (0-based): λ·(1 − decay·epoch/epochs), as the original project used."""
    return base * (1.0 - decay * epoch / max(epochs, 1))


def batchnorms(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and m.affine]


@torch.no_grad()
def add_l1_subgradient(model: nn.Module, strength: float) -> int:
    """Add `strength`·sign(γ) to every BatchNorm scale's gradient; returns how many layers got it.

    `strength` must already include the loss scale when gradients are still scaled (AMP).
    """
    touched = 0
    for _, bn in batchnorms(model):
        if bn.weight.grad is not None:
            bn.weight.grad.add_(torch.sign(bn.weight), alpha=strength)
            touched += 1
    return touched


@torch.no_grad()
def abs_gammas(model: nn.Module) -> torch.Tensor:
    """All |γ| of the model in one float32 CPU vector."""
    values = [bn.weight.detach().abs().float().cpu() for _, bn in batchnorms(model)]
    return torch.cat(values) if values else torch.empty(0)


def summary(gammas: torch.Tensor) -> dict[str, float]:
    """Mean |γ| and the share of |γ| under each near-zero threshold."""
    if gammas.numel() == 0:
        return {"channels": 0, "mean_abs_gamma": 0.0} | {f"share_below_{t:g}": 0.0 for t in NEAR_ZERO}
    result = {"channels": int(gammas.numel()), "mean_abs_gamma": float(gammas.mean())}
    for threshold in NEAR_ZERO:
        result[f"share_below_{threshold:g}"] = float((gammas < threshold).float().mean())
    return result


@torch.no_grad()
def bn_statistics(model: nn.Module) -> dict[str, object]:
    """Per BatchNorm layer and overall: channels, mean |γ|, shares near zero."""
    layers = {name: summary(bn.weight.detach().abs().float().cpu()) for name, bn in batchnorms(model)}
    return {"overall": summary(abs_gammas(model)), "layers": layers}

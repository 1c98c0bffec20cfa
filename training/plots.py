"""The |γ| distribution picture the network-slimming authors judged sparsity by."""

from __future__ import annotations

from pathlib import Path

import torch


def plot_gamma_distribution(first: torch.Tensor, last: torch.Tensor, path: Path, *, last_epoch: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    top = float(max(first.max(), last.max(), 1e-6))
    bins = torch.linspace(0, top, 81).tolist()
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    axis.hist(first.numpy(), bins=bins, alpha=0.55, label="epoch 1", color="tab:blue")
    axis.hist(last.numpy(), bins=bins, alpha=0.55, label=f"epoch {last_epoch}", color="tab:orange")
    axis.set_xlabel("|γ| (BatchNorm scale)")
    axis.set_ylabel("channels")
    axis.set_yscale("log")
    axis.set_title(f"BatchNorm scales, {last.numel():,} channels: mean |γ| "
                   f"{float(first.mean()):.3f} → {float(last.mean()):.3f}")
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path

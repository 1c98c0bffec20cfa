"""Faster CPU generation: a bfloat16 body and an int8 output layer.

Most of the time per generated token goes into the output layer, a 640 × 262,144 matrix for the
default Gemma (the vocabulary), read once per token. Dynamic int8 quantization of that layer reads a
quarter of the bytes; bfloat16 halves the rest. Training (P-Tuning) stays in float32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class _Int8Head(nn.Module):
    """The output layer, int8-quantized for speed; takes the body's bfloat16 states, returns float32 logits."""

    def __init__(self, weight: torch.Tensor, quantized_weight: torch.Tensor | None = None):
        super().__init__()
        if quantized_weight is None:
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            linear.weight = nn.Parameter(weight.detach().float().clone(), requires_grad=False)
            quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)
            self.linear = quantized[0]
        else:  # the same int8 weight, read back from the cache: only torch's packing is left to do
            # made 1 × 1 first: made at full size, the layer packs a zero matrix of that size (1 s here) only
            # to have it replaced
            self.linear = torch.ao.nn.quantized.dynamic.Linear(1, 1, bias_=False, dtype=torch.qint8)
            self.linear.set_weight_bias(quantized_weight, None)
            self.linear.out_features, self.linear.in_features = weight.shape

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float())


def head_cache_path(models_dir: Path, fingerprint: str) -> Path:
    """Where the int8 output layer of a base is kept: one file per base and torch release (the prefix never
    touches the output layer; torch is what quantizes it)."""
    return Path(models_dir) / "cpu-speed-up" / f"head-{fingerprint}-torch{torch.__version__}.safetensors"


def speed_up_for_cpu(model: nn.Module, cache: Path | None = None) -> nn.Module:
    """Convert a causal LM (or a peft model around one) in place for faster CPU inference; returns it.

    Quantizing the output layer is most of the conversion's time (bench/llm.py); with `cache`, the int8
    weight is read from that file when it holds this very layer (a digest of its float weight is stored with
    it), else computed and saved there for the next process.
    """
    import warnings

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    weight = head.weight.detach().float().clone()  # copied first: the head may share the input embeddings
    model.to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices for quantized tensors
        quantized = _read_head(cache, weight) if cache is not None else None
        int8_head = _Int8Head(weight, quantized)
        if cache is not None and quantized is None:
            _write_head(cache, weight, int8_head.linear.weight())
    base.set_output_embeddings(int8_head)
    model.eval()
    return model


def _digest(weight: torch.Tensor) -> str:
    """A digest of the float weight that is cheap to take: its shape and every 61st row. The file is named by
    the base's fingerprint already; this catches a file written for other values under that name. (Every row's
    sum was in it too: 1.6 s of a new process.)"""
    import hashlib

    digest = hashlib.sha256(repr(tuple(weight.shape)).encode())
    digest.update(weight[::61].contiguous().numpy().tobytes())
    return digest.hexdigest()


def _read_head(path: Path, weight: torch.Tensor) -> torch.Tensor | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as file:
            if file.metadata().get("digest") != _digest(weight):
                return None
            values = file.get_tensor("int8")
            scale, zero_point = float(file.metadata()["scale"]), int(file.metadata()["zero_point"])
    except (OSError, KeyError, ValueError, RuntimeError):
        return None  # unreadable or from another layout: computed again and rewritten
    return torch._make_per_tensor_quantized_tensor(values, scale, zero_point)


def _write_head(path: Path, weight: torch.Tensor, quantized: torch.Tensor) -> None:
    import os

    from safetensors.torch import save_file

    if quantized.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return  # a torch that quantizes per channel: nothing this cache knows how to keep
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    save_file({"int8": quantized.int_repr().contiguous()}, str(partial),
              metadata={"digest": _digest(weight), "scale": repr(quantized.q_scale()),
                        "zero_point": str(quantized.q_zero_point())})
    os.replace(partial, path)

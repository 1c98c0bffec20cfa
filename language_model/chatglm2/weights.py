"""Read an original ChatGLM2 folder's weights as they are: one file or shards, safetensors or torch pickles.

The 6B model ships as `pytorch_model-0000N-of-00007.bin` with `pytorch_model.bin.index.json` (later
also as safetensors shards). Shards are read one at a time and assigned into a model built on the
meta device, so the weights are in memory once, never twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from birdsdao.errors import InvalidInputError

# single file, then its sharded form (index → shard files), safetensors first
LAYOUTS = (("model.safetensors", "model.safetensors.index.json"),
           ("pytorch_model.bin", "pytorch_model.bin.index.json"))
# saved by the original, never read by its forward pass (the angles are recomputed here)
UNUSED = ("transformer.rotary_pos_emb.inv_freq",)


def weight_files(folder: Path) -> list[Path]:
    """The files holding the weights, in the order the index lists them."""
    folder = Path(folder)
    for single, index in LAYOUTS:
        if (folder / index).is_file():
            try:
                weight_map = json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"]
            except (OSError, json.JSONDecodeError, KeyError) as exc:
                raise InvalidInputError(f"{folder / index}: not a weight index ({exc})") from None
            files = [folder / name for name in dict.fromkeys(weight_map.values())]
            missing = [path.name for path in files if not path.is_file()]
            if missing:
                raise InvalidInputError(f"{folder}: {index} names {missing[0]}, which is not there",
                                        hint="download every shard of the model")
            return files
        if (folder / single).is_file():
            return [folder / single]
    raise InvalidInputError(f"{folder}: no model weights (model.safetensors, pytorch_model.bin or their shards)")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """One weight file; pickles are read with `weights_only`, so a file cannot run code."""
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path))
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # pickles older than torch 1.6's zip format cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or truncated files raise many kinds of errors
        raise InvalidInputError(f"{path}: unreadable weights ({type(exc).__name__}: {exc})") from None


def iter_shards(folder: Path) -> Iterator[dict[str, torch.Tensor]]:
    for path in weight_files(folder):
        yield read_tensors(path)


def load_weights(model: torch.nn.Module, folder: Path, dtype: torch.dtype) -> None:
    """Assign every weight of `folder` into `model` (built on the meta device), cast to `dtype`.

    Raises:
        InvalidInputError: a weight the model needs is missing, one it does not have is present, or a
            shape differs (the folder's config.json does not describe its weights).
    """
    expected = dict(model.state_dict())
    seen: set[str] = set()
    for shard in iter_shards(folder):
        chosen = {}
        for name, tensor in shard.items():
            if name in UNUSED:
                continue
            if name not in expected:
                raise InvalidInputError(f"{folder}: the weights hold {name}, which config.json does not describe",
                                        hint="check that config.json belongs to these weights")
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise InvalidInputError(f"{folder}: {name} is {list(tensor.shape)}, config.json says "
                                        f"{list(expected[name].shape)}")
            chosen[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        model.load_state_dict(chosen, strict=False, assign=True)
        seen.update(chosen)
        del shard, chosen
    missing = sorted(set(expected) - seen)
    if missing:
        hint = ("the folder's config.json sets pre_seq_len, but its weights hold no prefix: load a prefix with "
                "--prefix instead" if missing[0].startswith("transformer.prefix_encoder.") else None)
        raise InvalidInputError(f"{folder}: {len(missing)} weights missing, the first {missing[0]}", hint=hint)

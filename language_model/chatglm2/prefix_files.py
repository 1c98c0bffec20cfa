"""ChatGLM2 prefixes on disk: the original ptuning checkpoints and the ones `birds ptune` writes.

The original scripts saved only the trainable weights, `transformer.prefix_encoder.embedding.weight`
(plus `transformer.prefix_encoder.trans.{0,2}.{weight,bias}` with `--prefix_projection`), through
`save_pretrained`: `pytorch_model.bin` up to transformers 4.34, `model.safetensors` after. birdsdao
writes the same keys to `model.safetensors`, so either side's prefix is one format. The prefix
length and the projection are read from the tensors; their width must fit the base model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from birdsdao.errors import InvalidInputError
from birdsdao.language_model.chatglm2.modeling import ChatGLM2ForCausalLM
from birdsdao.language_model.chatglm2.weights import read_tensors
from birdsdao.language_model.ptune import PrefixMismatchError

KEY = "transformer.prefix_encoder."
FILES = ("model.safetensors", "pytorch_model.bin")


def has_prefix_file(folder: Path) -> bool:
    return any((Path(folder) / name).is_file() for name in FILES)


def read_prefix(folder: Path) -> dict[str, torch.Tensor]:
    """The prefix encoder's tensors, named as in the encoder (`embedding.weight`, `trans.0.weight`, …)."""
    folder = Path(folder)
    path = next((folder / name for name in FILES if (folder / name).is_file()), None)
    if path is None:
        raise InvalidInputError(f"{folder}: no ChatGLM2 prefix (neither {' nor '.join(FILES)})",
                                hint="give a checkpoint-N folder of the original ptuning or a `birds ptune` output")
    state = {name[len(KEY):]: tensor for name, tensor in read_tensors(path).items() if name.startswith(KEY)}
    if "embedding.weight" not in state:
        raise InvalidInputError(f"{path}: holds no {KEY}embedding.weight, so it is not a ChatGLM2 prefix")
    return state


def check_prefix(state: dict[str, torch.Tensor], model: ChatGLM2ForCausalLM, where: Path) -> tuple[int, bool]:
    """(pre_seq_len, prefix_projection) of a prefix that fits `model`; a prefix for another base is refused."""
    config = model.config
    width, hidden = config.prefix_width, config.hidden_size
    length = state["embedding.weight"].shape[0]
    projection = any(name.startswith("trans.") for name in state)
    expected = {"embedding.weight": (length, width)}
    if projection:
        expected.update({"trans.0.weight": (hidden, width), "trans.0.bias": (hidden,),
                         "trans.2.weight": (width, hidden), "trans.2.bias": (width,)})
    for name, shape in expected.items():
        found = tuple(state[name].shape) if name in state else None
        if found != shape:
            raise PrefixMismatchError(
                f"{where}: {KEY}{name} is {list(found) if found else 'missing'}, this base needs {list(shape)} "
                f"({config.num_layers} layers × key and value × {config.kv_heads} groups × {config.kv_channels})",
                hint="the prefix was trained on another base model: load it with that one",
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise InvalidInputError(f"{where}: unexpected prefix weight {KEY}{extra[0]}")
    return length, projection


def apply_prefix(model: ChatGLM2ForCausalLM, folder: Path) -> ChatGLM2ForCausalLM:
    """`model` (changed in place) with the prefix of `folder` in its prefix encoder."""
    state = read_prefix(folder)
    length, projection = check_prefix(state, model, Path(folder))
    encoder = model.set_prefix(length, projection)
    reference = encoder.embedding.weight
    encoder.load_state_dict({name: tensor.to(device=reference.device, dtype=reference.dtype)
                             for name, tensor in state.items()})
    model.eval()
    return model


def start_prefix(model: ChatGLM2ForCausalLM, pre_seq_len: int, projection: bool) -> ChatGLM2ForCausalLM:
    """A new prefix encoder, in float32, and the only trainable part of the model (as the original froze it)."""
    model.requires_grad_(False)
    encoder = model.set_prefix(pre_seq_len, projection).float()
    encoder.requires_grad_(True)
    return model


def write_prefix(model: ChatGLM2ForCausalLM, folder: Path) -> Path:
    """`model.safetensors` with the prefix encoder's weights under their original names."""
    from safetensors.torch import save_file

    encoder = model.transformer.prefix_encoder
    if encoder is None:
        raise ValueError("the model has no prefix encoder to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {KEY + name: tensor.detach().float().cpu().contiguous() for name, tensor in encoder.state_dict().items()}
    save_file(state, str(folder / FILES[0]), metadata={"format": "pt"})
    return folder / FILES[0]

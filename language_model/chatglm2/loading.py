"""A ChatGLM2-6B folder (config.json, tokenizer.model, weights) → this package's model and tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from birdsdao.language_model.chatglm2.config import ChatGLM2Config
from birdsdao.language_model.chatglm2.detect import read_config
from birdsdao.language_model.chatglm2.modeling import ChatGLM2ForCausalLM
from birdsdao.language_model.chatglm2.tokenizer import ChatGLM2Tokenizer
from birdsdao.language_model.chatglm2.weights import load_weights


def build_config(folder: Path) -> ChatGLM2Config:
    values = read_config(folder)
    for key in ("auto_map", "architectures"):  # they name the remote code, which is not used here
        values.pop(key, None)
    return ChatGLM2Config(**values)


def build_model(folder: Path, dtype: torch.dtype = torch.float32) -> ChatGLM2ForCausalLM:
    """The model of `folder`'s config.json with its weights, on the CPU."""
    with torch.device("meta"):  # no time spent initialising 6B weights that are overwritten next
        model = ChatGLM2ForCausalLM(build_config(folder))
    load_weights(model, folder, dtype)
    return model


def load_chatglm2(folder: Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu",
                  quantization_bit: int | None = None) -> tuple[ChatGLM2ForCausalLM, ChatGLM2Tokenizer]:
    """The model in eval mode on `device`, and its tokenizer.

    With `quantization_bit` (4 or 8; a CUDA device and bitsandbytes) the encoder's linear layers are
    quantized and the rest stays in float16.
    """
    folder = Path(folder)
    if quantization_bit:
        from birdsdao.language_model.models import check_quantization

        check_quantization(quantization_bit, device)  # a clear error on a CPU, before any weight is read
    tokenizer = ChatGLM2Tokenizer.from_pretrained(folder)
    model = build_model(folder, torch.float16 if quantization_bit else dtype)
    generation = model.generation_config
    if generation.eos_token_id is None:
        generation.eos_token_id = tokenizer.eos_token_id
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    if quantization_bit:
        from birdsdao.language_model.chatglm2.quantize import quantize_encoder

        quantize_encoder(model, quantization_bit, device)
    else:
        model.to(device)
    model.eval()
    return model, tokenizer

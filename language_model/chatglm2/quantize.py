"""4- or 8-bit linear layers through bitsandbytes (CUDA only), as the original's `--quantization_bit`.

The original quantized the encoder's linear layers and kept the embedding and the output layer in
half precision; so does this. bitsandbytes quantizes a layer's weight when it moves to the GPU.
"""

from __future__ import annotations

import torch
from torch import nn


def quantize_encoder(model: nn.Module, bits: int, device: str) -> nn.Module:
    """Swap every linear layer in `transformer.encoder` for a bitsandbytes one, then move the model to `device`.

    The caller has checked that a CUDA GPU and bitsandbytes are there (models.check_quantization).
    """
    import bitsandbytes as bnb

    encoder = model.transformer.encoder
    for name, module in list(encoder.named_modules()):
        if type(module) is not nn.Linear:
            continue
        weight = module.weight.data.to(torch.float16)
        if bits == 4:
            layer = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=module.bias is not None,
                                      compute_dtype=torch.float16, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        else:
            layer = bnb.nn.Linear8bitLt(module.in_features, module.out_features, bias=module.bias is not None,
                                        has_fp16_weights=False, threshold=6.0)
            layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        if module.bias is not None:
            layer.bias = nn.Parameter(module.bias.data.to(torch.float16), requires_grad=False)
        encoder.set_submodule(name, layer)
    return model.to(device)

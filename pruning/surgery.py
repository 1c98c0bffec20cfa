"""Remove channels from a YOLOv8 detector in place, walking its layers rather than fixed indices.

Each layer's output is described by `Channels`: which of its original channels survive, and the
constant that every removed channel still sends downstream. A channel whose BatchNorm scale γ is 0
outputs act(β) everywhere, whatever the input; that constant is folded into each consumer (its
BatchNorm running mean, or its bias), which is exact when the consumer is a 1x1 convolution or has
no padding, and exact away from the borders otherwise (zero padding does not carry the constant).

Supported layers: Conv, C2f, SPPF, Upsample, Concat and the YOLOv8 Detect head, i.e. every YOLOv8
size and class count. Anything else is refused by `check_supported` before a tensor is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from birdsdao.errors import InvalidInputError

SUPPORTED_LAYERS = {"Conv", "C2f", "SPPF", "Upsample", "Concat", "Detect"}


@dataclass
class Channels:
    """What flows out of a layer after pruning: surviving original channels and removed channels' constants."""

    count: int  # channels before pruning
    keep: torch.Tensor | None = None  # surviving original indices, ascending; None: all survive
    constant: torch.Tensor | None = None  # per original channel, the value a removed channel still sends

    @staticmethod
    def concat(parts: list[Channels]) -> Channels:
        if all(part.keep is None for part in parts):
            return Channels(sum(part.count for part in parts))
        keeps, constants, offset = [], [], 0
        for part in parts:
            keeps.append((part.keep if part.keep is not None else torch.arange(part.count)) + offset)
            constants.append(part.constant if part.constant is not None else torch.zeros(part.count))
            offset += part.count
        return Channels(offset, torch.cat(keeps), torch.cat(constants))


@dataclass
class SurgeryLog:
    # consumers whose fold of removed channels' constants is exact only away from the image borders
    approximate_folds: list[str] = field(default_factory=list)
    exact_folds: int = 0


def check_supported(model: nn.Module) -> None:
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise InvalidInputError("not an ultralytics detection model (no layer sequence)")
    unsupported = sorted({type(layer).__name__ for layer in layers} - SUPPORTED_LAYERS)
    if unsupported:
        raise InvalidInputError(
            f"birds prune handles YOLOv8 layers ({', '.join(sorted(SUPPORTED_LAYERS))}); "
            f"this model also has {', '.join(unsupported)}"
        )
    head = layers[-1]
    branches = [*head.cv2, *head.cv3] if type(head).__name__ == "Detect" else []
    plain = all(
        type(part).__name__ == "Conv" and part.conv.groups == 1 or type(part) is nn.Conv2d
        for branch in branches for part in branch
    )
    if getattr(head, "end2end", False) or not plain:
        raise InvalidInputError("birds prune handles the YOLOv8 Detect head (Conv, Conv, Conv2d branches), "
                                "not this head variant")


def apply_plan(model: nn.Module, keep_indices: dict[str, torch.Tensor]) -> SurgeryLog:
    """Prune `model` in place: `keep_indices` maps a BatchNorm's module name to the channels it keeps."""
    check_supported(model)
    names = {module: name for name, module in model.named_modules()}
    surgery = _Surgery(names, keep_indices)
    outputs: list[Channels] = []
    for index, layer in enumerate(model.model):
        sources = layer.f if isinstance(layer.f, list) else [layer.f]
        image = Channels(0)  # the first layer reads the picture, which is never narrowed
        inputs = [(outputs[index - 1] if index else image) if source == -1 else outputs[source] for source in sources]
        handler = getattr(surgery, f"_{type(layer).__name__.lower()}")
        outputs.append(handler(layer, inputs))
    return surgery.log


class _Surgery:
    def __init__(self, names: dict[nn.Module, str], keep_indices: dict[str, torch.Tensor]):
        self.names = names
        self.keep_indices = keep_indices
        self.log = SurgeryLog()

    # -- layers -------------------------------------------------------------------------------------
    def _conv(self, conv, inputs):
        self.narrow_input(conv.conv, conv.bn, inputs[0])
        return self.narrow_output(conv)

    def _upsample(self, layer, inputs):
        return inputs[0]  # nearest-neighbour upsampling keeps a constant channel constant

    def _concat(self, layer, inputs):
        return Channels.concat(inputs)

    def _c2f(self, block, inputs):
        self.narrow_input(block.cv1.conv, block.cv1.bn, inputs[0])
        halves = self.narrow_output(block.cv1)  # tied: always whole (see training.channel_plan)
        parts, previous = [halves], Channels(block.c)
        for bottleneck in block.m:
            self.narrow_input(bottleneck.cv1.conv, bottleneck.cv1.bn, previous)
            hidden = self.narrow_output(bottleneck.cv1)
            self.narrow_input(bottleneck.cv2.conv, bottleneck.cv2.bn, hidden)
            previous = self.narrow_output(bottleneck.cv2)
            parts.append(previous)
        self.narrow_input(block.cv2.conv, block.cv2.bn, Channels.concat(parts))
        return self.narrow_output(block.cv2)

    def _sppf(self, block, inputs):
        self.narrow_input(block.cv1.conv, block.cv1.bn, inputs[0])
        pooled = self.narrow_output(block.cv1)
        # max-pooling a constant map (padding is -inf) gives the same constant: the copies stay exact
        self.narrow_input(block.cv2.conv, block.cv2.bn, Channels.concat([pooled] * (getattr(block, "n", 3) + 1)))
        return self.narrow_output(block.cv2)

    def _detect(self, head, inputs):
        for level, channels in enumerate(inputs):
            for branch in (head.cv2[level], head.cv3[level]):
                flowing = channels
                for part in branch:
                    if isinstance(part, nn.Conv2d):  # the final prediction conv: its outputs stay whole
                        self.narrow_input(part, None, flowing)
                    else:
                        self.narrow_input(part.conv, part.bn, flowing)
                        flowing = self.narrow_output(part)
        return Channels(0)

    # -- tensors ------------------------------------------------------------------------------------
    def narrow_output(self, conv_block) -> Channels:
        """Keep the planned output channels of an ultralytics Conv (conv + bn + act)."""
        conv, bn = conv_block.conv, conv_block.bn
        count = bn.num_features
        keep = self.keep_indices.get(self.names[bn])
        if keep is None or len(keep) == count:
            return Channels(count)
        if len(keep) == 0:
            raise InvalidInputError(f"pruning would leave {self.names[bn]} with no channels")
        keep = torch.as_tensor(keep, dtype=torch.long).sort().values
        with torch.no_grad():
            constant = conv_block.act(bn.bias.detach().float().clone()).float()
        conv.weight = nn.Parameter(conv.weight.data[keep].clone())
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.data[keep].clone())
        conv.out_channels = len(keep)
        bn.weight = nn.Parameter(bn.weight.data[keep].clone())
        bn.bias = nn.Parameter(bn.bias.data[keep].clone())
        bn.running_mean = bn.running_mean[keep].clone()
        bn.running_var = bn.running_var[keep].clone()
        bn.num_features = len(keep)
        return Channels(count, keep, constant)

    def narrow_input(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, channels: Channels) -> None:
        """Drop removed input channels of `conv`, folding their constants into `bn` (or the conv's bias)."""
        if channels.keep is None:
            return
        if conv.groups != 1:
            raise InvalidInputError(f"{self.names[conv]} is a grouped convolution: its inputs cannot be narrowed")
        weight = conv.weight.data
        removed = torch.ones(channels.count, dtype=torch.bool)
        removed[channels.keep] = False
        constant = channels.constant[removed].to(weight.dtype)
        # each output's shift = Σ over removed inputs and the kernel of weight × that input's constant
        shift = (weight[:, removed].sum(dim=(2, 3)) * constant).sum(dim=1)
        if bool(shift.abs().max() > 0):
            if bn is not None:
                bn.running_mean -= shift.to(bn.running_mean.dtype)  # BN(z + s) with mean μ is BN(z) with μ − s
            else:
                if conv.bias is None:
                    conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=weight.dtype))
                conv.bias.data += shift
            if max(conv.kernel_size) > 1 and max(conv.padding) > 0:
                self.log.approximate_folds.append(self.names[conv])
            else:
                self.log.exact_folds += 1
        conv.weight = nn.Parameter(weight[:, channels.keep].clone())
        conv.in_channels = len(channels.keep)

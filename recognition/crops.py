"""What the species classifier sees: a bird's box cut from the photo with a margin, as the backbone's input.

numpy and Pillow only, so the onnxruntime path never imports torch. The converted EfficientNet-Lite
weights were trained on TF-style input, (x − 127) / 128; that scaling is done inside the model (the ONNX
export and `backbone.FeatureNet` alike), so the tensor here stays in 0..255.
"""

from __future__ import annotations

import numpy as np

CROP_PADDING = 0.1  # share of the box's width/height added on each side: the detector's boxes are tight
INPUT_MEAN = 127.0
INPUT_STD = 128.0


def padded_crop(image, box: tuple[float, float, float, float], padding: float = CROP_PADDING):
    """The box widened by `padding` of its size on each side, clipped to the photo."""
    x1, y1, x2, y2 = box
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(image.width, int(round(x2 + pad_x))), min(image.height, int(round(y2 + pad_y)))
    if right - left < 2 or bottom - top < 2:  # a degenerate box: the whole photo says more than a sliver
        return image
    if (left, top, right, bottom) == (0, 0, image.width, image.height):
        return image  # the same object: the caller may reuse what it computed for the whole photo
    return image.crop((left, top, right, bottom))


def to_input(images: list, size: int) -> np.ndarray:
    """RGB PIL images as an N × 3 × size × size float32 batch in 0..255 (each stretched to the square:
    a crop is a bird, and cutting its edges off loses more than a small change of aspect)."""
    from PIL import Image

    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for index, image in enumerate(images):
        resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
        batch[index] = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)
    return batch

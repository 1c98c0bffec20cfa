"""Where the bundled assets are: the species cards, tuning and gold sets (`birdsdao.data`) and the default
weights (`birdsdao.weights`), found through importlib.resources so that an editable install, a wheel in
site-packages and a source checkout all read the same files.

The repository keeps them in its top-level `data/` and `weights/` folders; pyproject.toml maps those
folders onto the two packages.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_folder(package: str) -> Path:
    # A regular package installed from a wheel or in editable mode is a folder on disk; the assets are read by
    # libraries that want real paths (onnxruntime, peft, Chroma's loaders), so a zipped install is refused.
    folder = files(package)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} is not installed as files on disk ({folder!r}); reinstall birdsdao with pip")
    return folder


def data_dir() -> Path:
    """The bundled content the project wrote itself: species cards, tuning Q&A, retrieval gold set."""
    return _package_folder("birdsdao.data")


def weights_dir() -> Path:
    """The bundled default weights and their MANIFEST.json."""
    return _package_folder("birdsdao.weights")

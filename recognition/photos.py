"""Photos as a user gives them: files, folders, globs; any format Pillow reads, upright, in RGB."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class Unreadable:
    path: str
    reason: str


def collect_photos(specs: list[str | Path]) -> tuple[list[Path], list[Unreadable]]:
    """Files named, images under folders named (recursively), and glob patterns; missing ones reported."""
    found: list[Path] = []
    missing: list[Unreadable] = []
    for spec in map(str, specs):
        path = Path(spec).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found += inside
            if not inside:
                missing.append(Unreadable(spec, "a folder with no photos in it (" + ", ".join(
                    sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)) + ")"))
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(spec):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            found += matches
            if not matches:
                missing.append(Unreadable(spec, "the pattern matches no file"))
        else:
            missing.append(Unreadable(spec, "no such file or folder"))
    return list(dict.fromkeys(found)), missing


def open_photo(path: Path):
    """An RGB PIL image turned the way the camera meant (EXIF orientation); UnidentifiedImageError/OSError if not."""
    from PIL import ImageOps

    from birdsdao.data_prep.images import _pillow_open

    with _pillow_open()(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGB")

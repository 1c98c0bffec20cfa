"""Checks of the paths a user gives, made before anything heavy loads or any output is written.

Each failure is one `InvalidInputError` (exit code 2) that names the path as the user gave it and says
what it is instead of what was expected: missing, a folder, empty, a photo, bytes of another format.
Nothing here imports torch, ultralytics or transformers: the checks cost a `stat` and a few bytes read.
"""

from __future__ import annotations

import os
from pathlib import Path

from birdsdao.errors import InvalidInputError, WeightsNotFoundError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic"}
# First bytes of the photo formats people have at hand: a photo given where weights belong is named as such.
PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
PICKLE_MAGIC = b"\x80"  # the legacy torch format opens with a pickle protocol byte
ONNX_FIRST_BYTE = 0x08  # an ONNX ModelProto opens with field 1 (ir_version) as a varint
WEIGHTS_HINT = "give a .pt saved by ultralytics (`birds train`, `birds prune`) or its ONNX export (`birds export`)"


def existing_file(path: str | os.PathLike, what: str, *, hint: str | None = None) -> Path:
    """`path` if it is a non-empty file; otherwise one line saying what it is instead of `what`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidInputError(f"{path}: a folder, not {what}", hint=hint)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file ({what} expected)", hint=hint)
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path}: an empty file, not {what}", hint=hint)
    return path


def existing_folder(path: str | os.PathLike, what: str, *, hint: str | None = None) -> Path:
    """`path` if it is a folder; otherwise one line saying what it is instead of `what`."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        kind = "a photo" if _looks_like_photo(path) else "a file"
        raise InvalidInputError(f"{path}: {kind}, not {what} (a folder)", hint=hint)
    raise InvalidInputError(f"{path}: no such folder ({what} expected)", hint=hint)


def writable_folder(path: str | os.PathLike, what: str = "the output folder") -> Path:
    """A folder that exists or can be created, and can be written to; checked before any work starts.

    Nothing is created: the first existing ancestor must be a folder this process may write into. Root
    passes any permission check, but not a regular file standing where a folder of the path should be.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"{path}: a file, not {what} (a folder)")
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise InvalidInputError(f"{path}: cannot be created for {what}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{path}: {what} cannot be written ({ancestor} is not writable)",
                                hint="choose a folder you may write to")
    return path


def weights_file(path: str | os.PathLike, what: str = "detector weights") -> Path:
    """A file that can be ultralytics weights: not missing, a folder, empty, a photo or foreign bytes.

    .pt and .onnx files are recognised by their first bytes; other export formats are left to the loader.
    """
    path = Path(path).expanduser()
    if not path.exists() and not path.is_symlink():
        raise WeightsNotFoundError(f"{path}: no such weights file ({what} expected)", hint=WEIGHTS_HINT)
    path = existing_file(path, what, hint=WEIGHTS_HINT)
    head = _head(path, 8)
    if head.startswith(PHOTO_MAGIC):
        raise InvalidInputError(f"{path}: a photo, not {what}", hint=WEIGHTS_HINT)
    if path.suffix.lower() in PHOTO_SUFFIXES:
        raise InvalidInputError(f"{path}: a {path.suffix} file (a photo's name), not {what}", hint=WEIGHTS_HINT)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth") and not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise InvalidInputError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle), "
                                f"so not {what}", hint=WEIGHTS_HINT)
    if suffix in (".pt", ".pth") and head.startswith(ZIP_MAGIC) and not _pickles_ultralytics(path):
        raise InvalidInputError(f"{path}: a torch file without an ultralytics model in it, so not {what}",
                                hint=WEIGHTS_HINT)
    if suffix == ".onnx" and head[0] != ONNX_FIRST_BYTE:
        raise InvalidInputError(f"{path}: not an ONNX model, so not {what}", hint=WEIGHTS_HINT)
    return path


def _pickles_ultralytics(path: Path) -> bool:
    """Whether a torch zip checkpoint's pickle names ultralytics' classes (DetectionModel …). The pickle
    holds the objects' structure only, tensors are stored beside it, so this reads kilobytes, not the weights."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            pickle = next((name for name in archive.namelist() if name.endswith("/data.pkl")), None)
            return pickle is not None and b"ultralytics" in archive.read(pickle)
    except (zipfile.BadZipFile, OSError):
        return False


def _looks_like_photo(path: Path) -> bool:
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return True
    try:
        return path.is_file() and _head(path, 8).startswith(PHOTO_MAGIC)
    except OSError:
        return False


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})") from None

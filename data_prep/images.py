"""Check one source image and place it in the output: decode it, measure it, link or copy it.

Runs in worker processes, so everything here is a plain function of picklable arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats ultralytics reads, and the extension it expects for each.
SUFFIX_FOR_FORMAT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
LINK_MODES = ("hardlink", "symlink", "copy")
# decode: every image decoded (JPEG at 1/8 scale, which still reads every byte of its stream);
# header: Pillow reads the header (format, size, EXIF) and verifies what it can without decoding (a PNG's
# checksums, a JPEG's end marker), as ultralytics' own dataset check does: no decoding CPU, but a JPEG
# damaged in the middle of its data passes.
CHECKS = ("decode", "header")
# link: a class's full-frame labels are one read-only file with a hard link per image (they are the same
# line); write: a file each, for label tools that edit files in place.
LABEL_MODES = ("link", "write")
_JPEG_END = b"\xff\xd9"
# EXIF orientations that turn the picture a quarter: width and height swap on display.
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(slots=True)
class Placed:
    ok: bool
    name: str = ""  # file name written under images/<split>/
    width: int = 0
    height: int = 0
    how: str = ""  # hardlink, symlink or copy
    label_how: str = ""  # link or write, when the worker placed the label; "" when it did not
    reason: str = ""


def safe_stem(text: str) -> str:
    """A file-name part with no spaces, separators or odd characters: `D-ARNAUDS BARBET` -> `d-arnauds-barbet`."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return stem or "x"


def yolo_line(class_id: int, box: tuple[float, float, float, float]) -> str:
    x, y, w, h = box
    return f"{class_id} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"


def probe_and_place(source: str, target_dir: str, stem: str, link: str, label_file: str = "",
                    label_line: str = "", check: str = "decode", label_prototype: str = "") -> Placed:
    """Check `source` (`check` in CHECKS: a truncated file fails here, not in training), then link it as `stem`.

    With `label_file`, also place its YOLO label `label_line`: a hard link of `label_prototype` (a file
    holding that line) when one is given and the file system allows it, else a new file. Creating a
    file costs this project's disk 0.1 to 0.7 ms, a link about 30 µs; either is done here, in parallel.
    """
    try:
        if os.path.getsize(source) == 0:
            return Placed(ok=False, reason="empty file")
        width, height, image_format = measure(source, check)
    except FileNotFoundError:
        return Placed(ok=False, reason="file not found")
    except UnidentifiedImageError:
        return Placed(ok=False, reason="not an image Pillow can read")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Placed(ok=False, reason=f"refused as a decompression bomb ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports truncated and corrupt data this way
        return Placed(ok=False, reason=f"corrupt image ({exc})")
    except Exception as exc:  # a plugin that patched Pillow may raise anything; one bad file is never fatal
        return Placed(ok=False, reason=f"unreadable image ({type(exc).__name__}: {exc})")
    suffix = SUFFIX_FOR_FORMAT.get(image_format)
    if suffix is None:
        return Placed(ok=False, reason=f"{image_format} images are not read by ultralytics")
    name = stem + suffix
    label_how = ""
    try:
        how = place_file(source, os.path.join(target_dir, name), link)
        if label_file:
            label_how = place_label(label_file, label_line, label_prototype)
    except OSError as exc:
        return Placed(ok=False, reason=f"cannot write to the output ({exc})")
    return Placed(ok=True, name=name, width=width, height=height, how=how, label_how=label_how)


def place_label(path: str, line: str, prototype: str = "") -> str:
    """`line` at `path`: a hard link of `prototype` where possible ("link"), else a new file ("write")."""
    if prototype:
        try:
            os.link(prototype, path)
            return "link"
        except OSError:
            pass  # a file system without hard links, or the prototype's link limit (65,000 on ext4)
    write_text(path, line)
    return "write"


def measure(source: str, check: str) -> tuple[int, int, str]:
    """(width, height as displayed, format), or an exception that says what is wrong with the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _pillow_open()(source) as image:
            width, height = image.size
            image_format = image.format or ""
            if image.getexif().get(0x0112) in _QUARTER_TURNS:
                width, height = height, width
            if check == "header":
                _verify_without_decoding(image)
                return width, height, image_format
            if image_format == "JPEG":
                # Decoding at 1/8 scale still reads every byte of the stream, at a fraction of the cost.
                image.draft(image.mode, (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
    return width, height, image_format


def _verify_without_decoding(image) -> None:
    if image.format in ("JPEG", "MPO"):
        image.fp.seek(-2, os.SEEK_END)  # the open file Pillow read the header from
        if image.fp.read(2) != _JPEG_END:
            raise OSError("no JPEG end marker: the file is truncated")
    else:
        image.verify()


def write_text(path: str, text: str) -> None:
    """A new small file, with plain system calls: a third cheaper than `open()`, once per image."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(descriptor, text.encode("utf-8"))
    finally:
        os.close(descriptor)


def _pillow_open():
    """Pillow's own `Image.open`, even after ultralytics patched it.

    The patch answers an unidentified file by pip-installing a HEIF plugin and retrying: a dataset
    converter must neither install packages nor slow down on every non-image file.
    """
    opener = Image.open
    if getattr(opener, "__module__", "") == "ultralytics.utils.patches":
        opener = getattr(sys.modules["ultralytics.utils.patches"], "_image_open", opener)
    return opener


def place_file(source: str, target: str, link: str) -> str:
    """Put `source` at `target`; a hard link falls back to a copy across file systems."""
    if link == "hardlink":
        try:
            os.link(source, target)
            return "hardlink"
        except OSError:
            pass  # another device, a file system without links, or too many links: copy instead
    elif link == "symlink":
        os.symlink(os.path.abspath(source), target)
        return "symlink"
    shutil.copyfile(source, target)
    return "copy"

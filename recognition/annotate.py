"""Draw the birds found on a copy of the photo: a box and a name for each.

Chinese names need a font with CJK glyphs. One installed on the system is used when there is one
(Noto CJK, WenQuanYi, Droid Sans Fallback, …; nothing is downloaded); otherwise the labels are in
English with matplotlib's DejaVu Sans.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


@cache
def cjk_font_path() -> str | None:
    """A system font that has Chinese characters, or None."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    for path in sorted(font_manager.findSystemFonts()):
        try:
            font = TTFont(path, fontNumber=0, lazy=True)
            if ord("鸟") in (font.getBestCmap() or {}):
                return path
        except Exception:  # unreadable font files are common; skip them
            continue
    return None


def _font(size: int):
    from matplotlib import get_data_path
    from PIL import ImageFont

    path = cjk_font_path() or str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    return ImageFont.truetype(path, size)


def label(bird, lang: str) -> str:
    name = bird.chinese_name if lang == "zh" and bird.chinese_name and cjk_font_path() else bird.english_name
    mark = "" if bird.certain else "?"
    return f"{name}{mark} {bird.confidence:.2f}"


def annotate(image, birds, lang: str = "zh"):
    """A copy of the RGB image with each bird's box and label."""
    from PIL import ImageDraw

    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    size = max(12, round(min(canvas.size) / 28))
    font = _font(size)
    for index, bird in enumerate(birds):
        colour = COLOURS[index % len(COLOURS)]
        x1, y1, x2, y2 = bird.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=max(2, size // 6))
        text = label(bird, lang)
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        lift = min(y1, bottom - top + 4)
        draw.rectangle((left, top - lift, right + 4, bottom - lift + 4), fill=colour)
        draw.text((x1 + 2, y1 - lift + 2), text, fill="white", font=font)
    return canvas


def save_annotated(image, birds, folder: Path, photo: Path, lang: str, taken: set[str]) -> Path:
    """Write DIR/<photo stem>.jpg (a number added when two photos share a stem); returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, number = photo.stem, 1
    while f"{stem}.jpg" in taken:
        number += 1
        stem = f"{photo.stem}-{number}"
    taken.add(f"{stem}.jpg")
    target = folder / f"{stem}.jpg"
    partial = folder / f".{stem}.jpg.partial"
    annotate(image, birds, lang).save(partial, format="JPEG", quality=92)
    partial.replace(target)
    return target

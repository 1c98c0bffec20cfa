from PIL import Image

from birdsdao.data_prep.images import probe_and_place, safe_stem
from tests.conftest import jpeg_bytes


def test_safe_stems():
    assert safe_stem("D-ARNAUDS BARBET") == "d-arnauds-barbet"
    assert safe_stem("BLACK & YELLOW  BROADBILL") == "black-yellow-broadbill"
    assert safe_stem("../../etc") == "etc"
    assert safe_stem("鸟") == "x"


def test_decompression_bombs_are_refused(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 megapixels in a few kilobytes
    (tmp_path / "out").mkdir()
    placed = probe_and_place(str(bomb), str(tmp_path / "out"), "bomb", "copy")
    assert not placed.ok and placed.reason.startswith("refused as a decompression bomb")
    assert list((tmp_path / "out").iterdir()) == []


def test_png_and_grayscale_images_are_placed_with_their_format(tmp_path):
    png = tmp_path / "grey.jpg"  # a PNG behind a .jpg name: the output gets the right extension
    Image.new("L", (30, 20), 128).save(png, format="PNG")
    (tmp_path / "out").mkdir()
    placed = probe_and_place(str(png), str(tmp_path / "out"), "grey", "copy", str(tmp_path / "grey.txt"), "0 x\n")
    assert (placed.ok, placed.name, placed.width, placed.height) == (True, "grey.png", 30, 20)
    assert (tmp_path / "grey.txt").read_text() == "0 x\n"
    jpeg = tmp_path / "a.jpg"
    jpeg.write_bytes(jpeg_bytes(16, 16))
    placed = probe_and_place(str(jpeg), str(tmp_path / "out"), "a", "hardlink")
    assert (placed.ok, placed.how) == (True, "hardlink")


def test_probing_ignores_the_ultralytics_pillow_patch(tmp_path):
    import ultralytics.utils.patches  # noqa: F401  (patches PIL.Image.open on import)
    from PIL import Image

    from birdsdao.data_prep.images import probe_and_place

    assert Image.open.__module__ == "ultralytics.utils.patches"
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    (tmp_path / "out").mkdir()
    placed = probe_and_place(str(notes), str(tmp_path / "out"), "notes", "copy")
    assert (placed.ok, placed.reason) == (False, "not an image Pillow can read")


def damaged_copies(folder, seed=3):
    """A good JPEG; one cut short; two whose header and end marker are intact: a stray start-of-image marker
    inside the picture data, and no picture data at all."""
    good = jpeg_bytes(256, 192, seed=seed)
    middle = len(good) // 2
    copies = {"good": good, "cut": good[: len(good) * 2 // 3], "scrambled": good[:middle] + b"\xff\xd8" + good[middle:],
              "empty": good[: good.index(b"\xff\xda")] + good[-2:]}
    for name, data in copies.items():
        (folder / f"{name}.jpg").write_bytes(data)
    return {name: str(folder / f"{name}.jpg") for name in copies}


def test_the_header_check_catches_truncation_and_the_decode_check_catches_damage_too(tmp_path):
    files = damaged_copies(tmp_path)
    outcomes = {}
    for check in ("decode", "header"):
        out = tmp_path / check
        out.mkdir()
        outcomes[check] = {name: probe_and_place(path, str(out), name, "copy", check=check)
                           for name, path in files.items()}
    for check, placed in outcomes.items():
        assert placed["good"].ok and (placed["good"].width, placed["good"].height) == (256, 192)
        assert not placed["cut"].ok and placed["cut"].reason.startswith("corrupt image"), check
    for damaged in ("scrambled", "empty"):
        assert not outcomes["decode"][damaged].ok, damaged  # a decode meets the damage …
        assert outcomes["header"][damaged].ok, damaged  # … the header check, by design, does not
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)
    refused = probe_and_place(str(bomb), str(tmp_path / "header"), "bomb", "copy", check="header")
    assert refused.reason.startswith("refused as a decompression bomb")

"""`birds identify` on detectors whose outputs the test sets, on generated photos and the real mini photos."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from birdsdao.recognition.detector import group_boxes
from birdsdao_cli.main import app
from tests.conftest import biased_detector, jpeg_bytes, shared_data

runner = CliRunner()
@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detectors")
    return {
        "sure": biased_detector(folder / "sure.pt", [4.0, -1.0, -9.0]),  # HOUSE FINCH 0.98, BANANAQUIT 0.27
        # HOUSE FINCH 0.31 from the fine and coarsest levels, BANANAQUIT 0.27 from the middle one: nobody certain
        "unsure": biased_detector(folder / "unsure.pt", [-0.8, -9.0, -9.0], coarse=[-9.0, -1.0, -9.0]),
        "blind": biased_detector(folder / "blind.pt", [-9.0, -9.0, -9.0]),  # nothing above 0.01
    }


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_bytes(96, 64, seed=1))
    Image.new("L", (80, 80), 128).save(folder / "gray.png")
    Image.new("P", (70, 90)).save(folder / "palette.webp")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def identify(*args):
    return runner.invoke(app, ["identify", *map(str, args)])


def test_confident_birds_are_named_counted_and_drawn(detectors, photos, tmp_path):
    result = identify(photos, "--weights", detectors["sure"], "--no-describe", "--save", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {Path(photo["path"]).name: photo for photo in data["photos"]}
    assert set(by_name) == {"a.jpg", "gray.png", "palette.webp", "broken.jpg"}
    assert "not a readable image" in by_name["broken.jpg"]["error"]
    photo = by_name["a.jpg"]
    assert (photo["width"], photo["height"]) == (96, 64)
    assert photo["birds"] and all(bird["species"] == "HOUSE FINCH" and bird["certain"] for bird in photo["birds"])
    assert photo["counts"] == {"HOUSE FINCH": len(photo["birds"])}
    bird = photo["birds"][0]
    assert bird["chinese_name"] == "家朱雀" and bird["english_name"] == "House Finch"
    assert 0.97 < bird["confidence"] <= 1 and [c["species"] for c in bird["candidates"]][0] == "HOUSE FINCH"
    x1, y1, x2, y2 = bird["box"]
    assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64
    annotated = Image.open(photo["annotated"])
    assert annotated.size == (96, 64) and Path(photo["annotated"]).parent == tmp_path / "out"
    assert data["descriptions"] == [] and data["imgsz"] == 64


def test_an_uncertain_bird_shows_candidates_and_is_not_counted(detectors, photos):
    data = json.loads(identify(photos / "a.jpg", "--weights", detectors["unsure"], "--no-describe", "--json").stdout)
    birds = data["photos"][0]["birds"]
    assert birds and not any(bird["certain"] for bird in birds) and data["photos"][0]["counts"] == {}
    assert data["photos"][0]["uncertain"] == len(birds)
    candidates = {c["species"] for bird in birds for c in bird["candidates"]}
    assert candidates == {"HOUSE FINCH", "BANANAQUIT"}  # the other species seen over the same place
    human = identify(photos / "a.jpg", "--weights", detectors["unsure"], "--no-describe")
    assert "uncertain" in human.stdout and "candidates: HOUSE FINCH 0.31, BANANAQUIT 0.27" in human.stdout


def test_no_bird_found_is_said(detectors, photos):
    result = identify(photos / "a.jpg", "--weights", detectors["blind"])
    assert result.exit_code == 0 and "no bird found" in result.stdout


def test_unreadable_input_is_reported_not_fatal_unless_nothing_is_left(detectors, photos, tmp_path):
    result = identify(photos / "broken.jpg", tmp_path / "nope.jpg", "--weights", detectors["sure"], "--no-describe")
    assert result.exit_code == 2 and "none of the photos could be read" in result.output
    assert "no such file or folder" in result.output and "not a readable image" in result.output
    globbed = identify(str(photos / "*.png"), "--weights", detectors["sure"], "--no-describe", "--json")
    assert [Path(p["path"]).name for p in json.loads(globbed.stdout)["photos"]] == ["gray.png"]


def test_missing_bundled_or_named_weights_are_clear(tmp_path, monkeypatch):
    import birdsdao.recognition.detector as detector_module

    monkeypatch.setattr(detector_module, "MANIFEST", tmp_path / "MANIFEST.json")
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(96, 64, seed=1))  # the photos are checked first
    result = identify(tmp_path, "--no-describe")
    assert result.exit_code == 2 and "no bundled detector" in result.output
    result = identify(tmp_path, "--weights", tmp_path / "x.pt")
    assert result.exit_code == 2 and "no such weights file" in result.output


@pytest.mark.slow
def test_the_onnx_backend_finds_the_same_species(detectors, photos, tmp_path):
    from ultralytics import YOLO

    weights = shutil.copy(detectors["sure"], tmp_path / "sure.pt")
    YOLO(weights).export(format="onnx", imgsz=64, verbose=False)
    torch_run = json.loads(identify(photos / "a.jpg", "--weights", weights, "--no-describe", "--json").stdout)
    onnx_run = json.loads(identify(photos / "a.jpg", "--weights", weights, "--backend", "onnx", "--no-describe",
                                   "--json").stdout)
    assert onnx_run["weights"].endswith("sure.onnx") and onnx_run["imgsz"] == 64 and onnx_run["backend"] == "onnx"
    assert torch_run["photos"][0]["counts"] == onnx_run["photos"][0]["counts"] != {}
    first_torch, first_onnx = torch_run["photos"][0]["birds"][0], onnx_run["photos"][0]["birds"][0]
    assert abs(first_torch["confidence"] - first_onnx["confidence"]) < 0.01
    assert all(abs(a - b) <= 2 for a, b in zip(first_torch["box"], first_onnx["box"], strict=True))
    # onnxruntime sees each box's own class scores: the runner-up species is a candidate
    assert [c["species"] for c in first_onnx["candidates"]] == ["HOUSE FINCH", "BANANAQUIT"]


@pytest.mark.slow
def test_identify_with_onnx_never_imports_torch(detectors, photos, tmp_path):
    import subprocess
    import sys

    from ultralytics import YOLO

    weights = shutil.copy(detectors["sure"], tmp_path / "fast.pt")
    onnx = YOLO(weights).export(format="onnx", imgsz=64, verbose=False)
    code = (
        "import sys\n"
        f"sys.argv = ['birds', 'identify', {str(photos / 'a.jpg')!r}, '--weights', {str(onnx)!r}, '--no-describe']\n"
        "from birdsdao_cli.main import app\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HOUSE FINCH" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


def test_boxes_over_one_place_are_one_bird_with_candidates():
    boxes = [((0, 0, 10, 10), 0.4, "A"), ((1, 1, 10, 10), 0.3, "B"), ((50, 50, 60, 60), 0.9, "C"),
             ((0, 0, 10, 9), 0.2, "A")]
    groups = group_boxes(boxes)
    assert [[box[2] for box in group] for group in groups] == [["C"], ["A", "B", "A"]]


@pytest.mark.slow
def test_descriptions_use_the_species_card(detectors, photos):
    result = identify(photos / "a.jpg", "--weights", detectors["sure"], "--no-llm", "--lang", "en", "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)["descriptions"]
    assert [d["species"] for d in described] == ["HOUSE FINCH"]  # once, however many finches were found
    assert described[0]["mode"] == "retrieved" and described[0]["question"] == "Tell me about the House Finch."
    assert all(source["source"].endswith("house-finch.yaml#en") for source in described[0]["sources"])


@pytest.mark.slow
def test_real_mini_photos_run_through(detectors):
    folder = shared_data("birds525-mini") / "valid" / "BANANAQUIT"
    data = json.loads(identify(folder, "--weights", detectors["sure"], "--no-describe", "--json").stdout)
    assert data["photos"][0]["width"] == 224 and data["photos"][0]["birds"]


def test_an_exif_rotated_photo_is_measured_upright(detectors, tmp_path):
    photo = tmp_path / "rotated.jpg"
    photo.write_bytes(jpeg_bytes(96, 64, seed=2, exif_orientation=6))  # stored landscape, shown portrait
    data = json.loads(identify(photo, "--weights", detectors["sure"], "--no-describe", "--json").stdout)
    assert (data["photos"][0]["width"], data["photos"][0]["height"]) == (64, 96)
    assert all(bird["box"][2] <= 64 and bird["box"][3] <= 96 for bird in data["photos"][0]["birds"])


def test_several_species_are_counted_and_each_described_once():
    from birdsdao.recognition.detector import Bird
    from birdsdao.recognition.identify import PhotoResult, species_to_describe

    def bird(species, confidence, certain=True):
        return Bird(species, species.title(), "", confidence, (0, 0, 1, 1), certain)

    first = PhotoResult("a.jpg", birds=[bird("HOUSE FINCH", 0.7), bird("BANANAQUIT", 0.9), bird("HOUSE FINCH", 0.6),
                                        bird("OVENBIRD", 0.4, certain=False)])
    second = PhotoResult("b.jpg", birds=[bird("HOUSE FINCH", 0.95)])
    assert first.counts == {"HOUSE FINCH": 2, "BANANAQUIT": 1} and first.uncertain == 1
    described = species_to_describe([first, second])
    assert [(b.species, b.confidence) for b in described] == [("HOUSE FINCH", 0.95), ("BANANAQUIT", 0.9)]


def test_quantization_on_a_cpu_fails_before_any_photo_is_read(detectors, photos):
    result = identify(photos, "--weights", detectors["sure"], "--quantization-bit", "8", "--json")
    assert result.exit_code == 2 and "--quantization-bit 8 needs a CUDA GPU" in result.output
    assert result.stdout == ""  # no photo was reported: the error came first
    fine = identify(photos / "a.jpg", "--weights", detectors["sure"], "--quantization-bit", "8", "--no-llm", "--json")
    assert fine.exit_code == 0, fine.output  # no language model, nothing to quantize

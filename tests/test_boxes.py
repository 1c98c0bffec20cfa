import pytest

from birdsdao.data_prep.boxes import BirdBoxDetector
from birdsdao.errors import InvalidInputError, WeightsNotFoundError
from tests.conftest import jpeg_bytes


def save_untrained_detector(path, names):
    """An untrained YOLOv8n from its yaml (nothing to download), saved with the given class names."""
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    model.model.names = dict(enumerate(names))
    model.save(str(path))
    return path


def test_detector_finds_its_bird_class_and_returns_one_answer_per_image(tmp_path):
    weights = save_untrained_detector(tmp_path / "coco.pt", ["person", "bicycle", "bird"])
    detector = BirdBoxDetector(weights, conf=0.25, imgsz=64)
    assert detector.bird_class == 2
    photos = []
    for number in range(3):
        photo = tmp_path / f"{number}.jpg"
        photo.write_bytes(jpeg_bytes(80, 60, number))
        photos.append(str(photo))
    found = detector.boxes(photos)
    assert len(found) == 3
    for box in found:  # an untrained network may find nothing; whatever it finds lies inside the frame
        assert box is None or all(0.0 <= value <= 1.0 for value in box)


def test_detector_without_a_bird_class_is_refused(tmp_path):
    weights = save_untrained_detector(tmp_path / "cars.pt", ["car", "truck"])
    with pytest.raises(InvalidInputError, match="no class named 'bird'"):
        BirdBoxDetector(weights)


def test_missing_or_broken_detector_weights(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        BirdBoxDetector(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="broken.pt: not a torch checkpoint"):
        BirdBoxDetector(broken)

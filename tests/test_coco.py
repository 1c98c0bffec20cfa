import json

from birdsdao.data_prep.coco import CocoWriter


def test_coco_lines_are_the_json_of_their_values(tmp_path):
    writer = CocoWriter(tmp_path / "instances.json", ["HOUSE FINCH", "ZEBRA DOVE"], "two species")
    odd = 'say "hi"\\ 家朱雀\ttab.jpg'
    writer.add_image(odd, 224, 180, "train/HOUSE FINCH/a b.jpg", [(1, 0.0, 10.004, 224.0, 169.996)])
    writer.add_image("b.jpg", 40, 60, "valid/ZEBRA DOVE/b.jpg", [(0, 1.23456, 2.5, 10.0, 1 / 3), (1, 0, 0, 40, 60)])
    writer.close()
    coco = json.loads((tmp_path / "instances.json").read_text(encoding="utf-8"))
    assert coco["images"] == [
        {"id": 1, "file_name": odd, "width": 224, "height": 180, "source": "train/HOUSE FINCH/a b.jpg"},
        {"id": 2, "file_name": "b.jpg", "width": 40, "height": 60, "source": "valid/ZEBRA DOVE/b.jpg"},
    ]
    assert coco["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0.0, 10.0, 224.0, 170.0], "area": 38079.1, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1.23, 2.5, 10.0, 0.33], "area": 3.33, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 40, 60], "area": 2400, "iscrowd": 0},
    ]
    assert [c["yolo_id"] for c in coco["categories"]] == [0, 1]

"""A COCO instances file written as images arrive, so memory stays flat on any dataset size."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from json.encoder import encode_basestring as _json_string  # a str as json.dumps(ensure_ascii=False) writes it
from pathlib import Path


class CocoWriter:
    """Collects images and annotations in two spill files, then joins them into one COCO json.

    COCO category ids are the YOLO class id + 1 (COCO keeps 0 for background by convention);
    each category also carries its `yolo_id`.
    """

    def __init__(self, path: Path, class_names: list[str], description: str):
        self.path = Path(path)
        self.class_names = class_names
        self.description = description
        self._images = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)
        self._annotations = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)
        self.image_count = 0
        self.annotation_count = 0

    def add_image(self, file_name: str, width: int, height: int, source: str,
                  boxes: list[tuple[int, float, float, float, float]]) -> None:
        """`boxes` are (class_id, x, y, w, h) in pixels, top-left corner first."""
        # The lines json.dumps would write, formatted directly: this runs twice per image of the dataset,
        # and building and encoding a dict each time was the parent process's largest cost (2.5x slower).
        self.image_count += 1
        self._images.write(
            f'{{"id": {self.image_count}, "file_name": {_json_string(file_name)}, "width": {int(width)}, '
            f'"height": {int(height)}, "source": {_json_string(source)}}}\n'
        )
        for class_id, x, y, w, h in boxes:
            self.annotation_count += 1
            self._annotations.write(
                f'{{"id": {self.annotation_count}, "image_id": {self.image_count}, "category_id": {int(class_id) + 1}, '
                f'"bbox": [{round(x, 2)!r}, {round(y, 2)!r}, {round(w, 2)!r}, {round(h, 2)!r}], '
                f'"area": {round(w * h, 2)!r}, "iscrowd": 0}}\n'
            )

    def close(self) -> None:
        categories = [
            {"id": i + 1, "name": name, "supercategory": "bird", "yolo_id": i}
            for i, name in enumerate(self.class_names)
        ]
        head = {
            "info": {"description": self.description, "version": "1.0", "date_created": date.today().isoformat()},
            "licenses": [],
            "categories": categories,
        }
        with open(self.path, "w", encoding="utf-8") as out:
            out.write(json.dumps(head, ensure_ascii=False)[:-1])  # reopen the object to append two arrays
            for key, spill in (("images", self._images), ("annotations", self._annotations)):
                out.write(f', "{key}": [')
                spill.seek(0)
                for number, line in enumerate(spill):
                    out.write(("," if number else "") + line.rstrip("\n"))
                out.write("]")
                spill.close()
            out.write("}\n")

    def discard(self) -> None:
        for spill in (self._images, self._annotations):
            if not spill.closed:
                spill.close()
        if self.path.exists():
            os.unlink(self.path)

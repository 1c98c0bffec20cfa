"""Turn an unpacked BIRDS-525 folder into a YOLO + COCO detection dataset."""

from birdsdao.data_prep.convert import ConvertConfig, ConvertReport, convert_dataset

__all__ = ["ConvertConfig", "ConvertReport", "convert_dataset"]

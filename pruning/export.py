"""`export_detector`: ultralytics export, with the ONNX result checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

from birdsdao.errors import InvalidInputError
from birdsdao.inputs import writable_folder

FORMATS = ("onnx", "torchscript")


def export_detector(weights: Path, format: str = "onnx", imgsz: int = 640) -> dict[str, object]:
    from birdsdao.pruning.prune import export_onnx_checked, load_detector

    if format not in FORMATS:
        raise InvalidInputError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    # ultralytics writes the export beside the weights
    writable_folder(Path(weights).expanduser().parent, "the folder the export is written to (beside WEIGHTS)")
    yolo = load_detector(weights, require_batchnorm=False)
    if format == "onnx":
        return export_onnx_checked(yolo, imgsz)
    return {"path": str(yolo.export(format=format, imgsz=imgsz, verbose=False)), "imgsz": imgsz}

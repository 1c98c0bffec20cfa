"""What `--sparse` costs: the same short training with and without it, interleaved, median epoch time.

Trains YOLOv8n from its yaml on a small real dataset (the first --classes species of
../shared/data/birds525-mini), --repeats times each way in alternation, and times the training
part of every epoch (on_train_epoch_start → on_train_epoch_end: the batches, the optimizer steps
and the penalty; not validation). Prints the median per-epoch seconds and sparse ÷ plain.

    python bench/sparse_overhead.py [--repeats 3] [--epochs 3] [--imgsz 128] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "birds525-mini"


def epoch_times(data: Path, project: Path, *, sparse: bool, args) -> list[float]:
    from ultralytics import YOLO

    from birdsdao.training.ultralytics_adapter import output_on_stderr, trainer_class

    times: list[float] = []
    started: dict[str, float] = {}

    class TimedTrainer(trainer_class(l1=1e-2 if sparse else 0.0)):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.add_callback("on_train_epoch_start", lambda t: started.__setitem__("t", time.perf_counter()))
            self.add_callback("on_train_epoch_end", lambda t: times.append(time.perf_counter() - started["t"]))

    with output_on_stderr():
        YOLO("yolov8n.yaml").train(
            trainer=TimedTrainer, data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
            workers=0, project=str(project), name="sparse" if sparse else "plain", optimizer="SGD", seed=0,
            plots=False, val=False, verbose=False,
        )
    return times[1:] if len(times) > 1 else times  # the first epoch also warms caches up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=20)
    args = parser.parse_args()
    if not PHOTOS.exists():
        sys.exit(f"{PHOTOS} is missing: this benchmark trains on the shared BIRDS-525 sample")
    from birdsdao.data_prep import ConvertConfig, convert_dataset

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        convert_dataset(ConvertConfig(source=PHOTOS, output=work / "data", classes=args.classes))
        data = work / "data" / "data.yaml"
        results: dict[str, list[float]] = {"plain": [], "sparse": []}
        for repeat in range(args.repeats):
            for name in ("plain", "sparse") if repeat % 2 == 0 else ("sparse", "plain"):
                results[name] += epoch_times(data, work / f"runs{repeat}", sparse=name == "sparse", args=args)
    plain, sparse = statistics.median(results["plain"]), statistics.median(results["sparse"])
    print(f"YOLOv8n, {args.classes} classes, imgsz {args.imgsz}, batch {args.batch}; "
          f"{len(results['plain'])} epochs timed each way, interleaved")
    print(f"median seconds per training epoch: plain {plain:.3f}, sparse {sparse:.3f}")
    print(f"sparse ÷ plain: {sparse / plain:.3f} (target ≤ 1.05)")


if __name__ == "__main__":
    main()

"""Benchmark `birds prepare-data` against `cp -al` of the same tree, measured side by side.

Builds a full-size BIRDS-400-shaped tree from ../shared/data/birds400.csv (62,388 rows) of small
real JPEGs, then times, as medians over --repeats runs:
  * `cp -al SRC DST` (hard-linking the tree: the floor for any converter that links images), and
  * the conversion of every species (the same files cp sees) and of the default 161,
each conversion in a fresh process so its peak memory (RSS, the largest process) can be read.
A second, 1/8-size tree shows whether peak memory grows with the dataset.

    python bench/prepare_data.py [--workdir /tmp/birds-bench] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV_400 = ROOT.parent / "shared" / "data" / "birds400.csv"


def jpeg_pool(count: int, size: int) -> list[bytes]:
    """A few distinct photo-like JPEGs (noise over gradients), about the weight of the real 224x224 files."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pool = []
    for _ in range(count):
        base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None] * rng.random(3, dtype=np.float32)
        pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        pool.append(buffer.getvalue())
    return pool


def build_tree(root: Path, rows: list[list[str]], header: list[str], size: int) -> None:
    if (root / "birds.csv").exists():
        return
    pool = jpeg_pool(32, size)
    for number, row in enumerate(rows):
        path = root / row[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pool[number % len(pool)])
    with open(root / "birds.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cp_al(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)


def convert_in_child(src: Path, out: Path, classes: int, workers: int) -> dict:
    """One conversion in a fresh interpreter; returns its report figures and peak RSS."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(src), str(out), str(classes), str(workers)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(src: str, out: str, classes: str, workers: str) -> None:
    from data_prep import ConvertConfig, convert_dataset

    started = time.perf_counter()
    report = convert_dataset(ConvertConfig(Path(src), Path(out), classes=int(classes), workers=int(workers),
                                           overwrite=True))
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "images": sum(report.images.values()),
                      "peak_mb": round(max(own, workers_peak), 1), "main_mb": round(own, 1),
                      "worker_mb": round(workers_peak, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/birds-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=224, help="side of the generated JPEGs")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if not CSV_400.exists():
        sys.exit(f"{CSV_400} is missing: this benchmark needs the shared BIRDS-400 csv")
    with open(CSV_400, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    full, small = args.workdir / "birds400-full", args.workdir / "birds400-eighth"
    print(f"building {len(rows):,} and {len(rows[::8]):,} synthetic {args.size}px JPEGs under {args.workdir} …")
    build_tree(full, rows, header, args.size)
    build_tree(small, rows[::8], header, args.size)

    cp_seconds = median_seconds(lambda: cp_al(full, args.workdir / "cp-al"), args.repeats)
    shutil.rmtree(args.workdir / "cp-al")
    runs = {}
    for label, src, classes in (("all 400 species", full, 400), ("161 species", full, 161),
                                ("1/8 tree, all species", small, 400)):
        results = [convert_in_child(src, args.workdir / "out", classes, args.workers) for _ in range(args.repeats)]
        runs[label] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "images": results[0]["images"],
            "peak_mb": max(r["peak_mb"] for r in results),
        }
    shutil.rmtree(args.workdir / "out", ignore_errors=True)

    print(f"\ncp -al of {len(rows):,} files: {cp_seconds:.2f} s (median of {args.repeats})")
    print(f"{'conversion, ' + str(args.workers) + ' workers':<34} {'images':>7} {'seconds':>8} {'img/s':>7} "
          f"{'÷ cp -al':>8} {'peak MB':>8}")
    for label, run in runs.items():
        ratio = run["seconds"] / cp_seconds if "1/8" not in label else float("nan")
        print(f"{label:<34} {run['images']:>7,} {run['seconds']:>8.2f} {run['images'] / run['seconds']:>7,.0f} "
              f"{ratio:>8.2f} {run['peak_mb']:>8.0f}")
    growth = runs["all 400 species"]["peak_mb"] / runs["1/8 tree, all species"]["peak_mb"]
    print(f"\npeak memory, full tree ÷ 1/8 tree: {growth:.2f} (1.00 = flat)")
    print(f"target: conversion ≤ 3× cp -al → {runs['all 400 species']['seconds'] / cp_seconds:.2f}×; "
          f"peak ≤ 500 MB → {runs['all 400 species']['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()

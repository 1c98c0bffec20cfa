"""Benchmark `birds prepare-data` against `cp -al` of the same tree, measured side by side.

Builds a full-size BIRDS-400-shaped tree from ../shared/data/birds400.csv (62,388 rows) whose files
are copies of the real 224x224 BIRDS-525 photos in ../shared/data/birds525-mini (cycled), then
times, as medians over --repeats runs:
  * `cp -al SRC DST`: hard-links the tree; a converter that links images cannot beat it;
  * `cp -a SRC DST`: copies the tree, creating one new file per image, as a converter must for
    its label files;
  * the conversion of every species (the files cp sees) with each image check (`--check decode`, the
    default, and `--check header`), with header checks and a label file each (`--labels write`) instead
    of the default links, and of the default 161,
  * decoding alone: every image decoded as `--check decode` does, in as many processes, writing nothing:
    the least time a conversion that decodes can take,
each in a fresh process so its peak memory (RSS of the largest process) can be read.
A second, 1/8-size tree shows whether peak memory grows with the dataset.

    python bench/prepare_data.py [--workdir /tmp/birds-bench] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CSV_400 = SHARED / "birds400.csv"
PHOTOS = SHARED / "birds525-mini"


def photo_pool() -> list[bytes]:
    return [path.read_bytes() for path in sorted(PHOTOS.glob("*/*/*.jpg"))]


def build_tree(root: Path, rows: list[list[str]], header: list[str]) -> None:
    if (root / "birds.csv").exists():
        return
    pool = photo_pool()
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


def copy_tree(flags: str, src: Path, dst: Path) -> float:
    shutil.rmtree(dst, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(["cp", flags, str(src), str(dst)], check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(dst)
    return seconds


def convert_in_child(src: Path, out: Path, classes: int, workers: int, check: str, labels: str) -> dict:
    """One conversion in a fresh interpreter; returns its report figures and peak RSS.

    The previous run's output is removed first, untimed: with --overwrite the conversion would delete it
    (120,000 entries) inside its own time."""
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(src), str(out), str(classes), str(workers), check, labels],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(src: str, out: str, classes: str, workers: str, check: str, labels: str) -> None:
    from birdsdao.data_prep import ConvertConfig, convert_dataset

    started = time.perf_counter()
    if check == "decode-only":
        images = decode_only(Path(src), int(workers))
    else:
        report = convert_dataset(ConvertConfig(Path(src), Path(out), classes=int(classes), workers=int(workers),
                                               check=check, labels=labels, overwrite=True))
        images = sum(report.images.values())
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "images": images,
                      "peak_mb": round(max(own, workers_peak), 1), "main_mb": round(own, 1),
                      "worker_mb": round(workers_peak, 1)}))


def decode_only(src: Path, workers: int) -> int:
    """Decode every image of the csv as the conversion's decode check does, in `workers` processes."""
    import functools
    import multiprocessing

    from birdsdao.data_prep.images import measure
    from birdsdao.data_prep.source import read_source

    paths = [image.path for image in read_source(src).images]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(functools.partial(measure, check="decode"), paths, chunksize=32):
            pass
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/birds-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if not CSV_400.exists() or not PHOTOS.exists():
        sys.exit(f"{CSV_400} or {PHOTOS} is missing: this benchmark needs the shared data")
    with open(CSV_400, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    full, small = args.workdir / "birds400-full", args.workdir / "birds400-eighth"
    print(f"building trees of {len(rows):,} and {len(rows[::8]):,} real JPEGs under {args.workdir} …")
    build_tree(full, rows, header)
    build_tree(small, rows[::8], header)

    # Interleave the runs, so that a slow spell of this shared machine hits every contender alike.
    seconds: dict[str, list[float]] = {"cp -al": [], "cp -a": []}
    contenders = (("all 400, decode", full, 400, "decode", "link"), ("all 400, header", full, 400, "header", "link"),
                  ("  … --labels write", full, 400, "header", "write"),
                  ("161 species, decode", full, 161, "decode", "link"),
                  ("1/8 tree, all 400", small, 400, "decode", "link"),
                  ("decoding alone", full, 400, "decode-only", ""))
    runs: dict[str, list[dict]] = {label: [] for label, *_ in contenders}
    for _ in range(args.repeats):
        seconds["cp -al"].append(copy_tree("-al", full, args.workdir / "copy"))
        seconds["cp -a"].append(copy_tree("-a", full, args.workdir / "copy"))
        for label, src, classes, check, labels in contenders:
            runs[label].append(convert_in_child(src, args.workdir / "out", classes, args.workers, check, labels))
    shutil.rmtree(args.workdir / "out", ignore_errors=True)

    cp_al, cp_a = statistics.median(seconds["cp -al"]), statistics.median(seconds["cp -a"])
    print(f"\nmedians of {args.repeats} runs; {len(rows):,} files; {args.workers} workers")
    print(f"cp -al: {cp_al:.2f} s    cp -a: {cp_a:.2f} s")
    print(f"{'conversion':<22} {'images':>7} {'seconds':>8} {'img/s':>7} {'÷ cp -al':>9} {'÷ cp -a':>8} {'peak MB':>8}")
    summary = {}
    for label, results in runs.items():
        run = summary[label] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "images": results[0]["images"],
            "peak_mb": max(r["peak_mb"] for r in results),
        }
        full_tree = not label.startswith("1/8")
        ratios = f"{run['seconds'] / cp_al:>9.2f} {run['seconds'] / cp_a:>8.2f}" if full_tree else f"{'':>18}"
        print(f"{label:<22} {run['images']:>7,} {run['seconds']:>8.2f} {run['images'] / run['seconds']:>7,.0f} "
              f"{ratios} {run['peak_mb']:>8.0f}")
    growth = summary["all 400, decode"]["peak_mb"] / summary["1/8 tree, all 400"]["peak_mb"]
    print(f"\npeak memory, full tree ÷ 1/8 tree: {growth:.2f} (1.00 = flat)")
    print(f"targets: conversion ≤ 3× cp -al → decode {summary['all 400, decode']['seconds'] / cp_al:.1f}×, "
          f"header {summary['all 400, header']['seconds'] / cp_al:.1f}×; "
          f"peak ≤ 500 MB → {max(run['peak_mb'] for label, run in summary.items() if 'alone' not in label):.0f} MB")
    floor = summary["decoding alone"]["seconds"]
    print(f"decoding alone takes {floor:.1f} s = {floor / cp_al:.1f}× cp -al: no conversion that decodes every "
          f"image can be faster on {args.workers} workers")


if __name__ == "__main__":
    main()

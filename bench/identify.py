"""Detector speed for `birds identify`: pruned vs unpruned, PyTorch vs onnxruntime, and the whole command.

In one run, on the same photos (the mini BIRDS-525 valid photos, or generated ones):
  * detector latency p50/IQR/p95 per photo at the detector's image size: the pruned weights in PyTorch and in
    onnxruntime, and the unpruned sparse-trained weights in PyTorch, taking turns on each photo (A, B, C, A …),
    as ratios of medians to the unpruned;
  * `birds identify PHOTO --no-describe` as a new process: wall time and peak memory (target ≤ 3 s, ≤ 1.5 GB);
  * `birds identify PHOTO` with a description: time until the first description character, from the card
    text (--no-llm) and from the default language model, alone (--no-prefix) and with the bundled prefix.

    python bench/identify.py [--weights PRUNED.pt] [--unpruned SPARSE.pt] [--photos 40]

Without --weights the bundled detector is used (weights/MANIFEST.json names the unpruned one too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import interleaved, spread  # noqa: E402

MINI = ROOT.parent / "shared" / "data" / "birds525-mini" / "valid"


def photos(count: int, folder: Path) -> list[Path]:
    if MINI.is_dir():
        return sorted(MINI.glob("*/*.jpg"))[:count]
    from PIL import Image

    made = []
    for number in range(count):
        path = folder / f"{number}.jpg"
        Image.effect_noise((224, 224), 40 + number).convert("RGB").save(path)
        made.append(path)
    return made


def detector_latency(cases: dict[str, tuple[Path, str]], images) -> dict[str, list[float]]:
    """Seconds per photo of each (weights, backend) case, the detectors taking turns on each photo."""
    from birdsdao.recognition.detector import open_detector

    detectors = {label: open_detector(weights, backend=backend) for label, (weights, backend) in cases.items()}
    return interleaved({label: (lambda number, d=detector: d.detect(images[number]))
                        for label, detector in detectors.items()}, runs=len(images), warmup=1)


_CHILD = ("import atexit, sys\n"
          "atexit.register(lambda: print('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
          " file=sys.stderr))\n"
          "from birdsdao_cli.main import app\napp()\n")


def child(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (the process's own VmHWM: ru_maxrss would count this bench's size at
    fork), and stdout of a `birds` process."""
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    peak = next(int(line.split()[1]) for line in process.stderr.splitlines() if line.startswith("VmHWM"))
    return wall, peak / 1024, process.stdout


def first_token(argv: list[str]) -> float:
    """Seconds from starting `birds identify` until the first character of the first description."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", "from birdsdao_cli.main import app; app()", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, bufsize=0)
    seen_table = seen_heading = False
    elapsed = float("nan")
    while not seen_heading:  # the table, its count line, then the species heading
        line = process.stdout.readline()
        if not line:
            break
        if seen_table and line.strip() and not line.startswith(("count:", "annotated:")):
            seen_heading = True
        seen_table = seen_table or line.startswith("count:")
    while seen_heading:  # the description streams without newlines: read it a character at a time
        character = process.stdout.read(1)
        if not character or not character.isspace():
            elapsed = time.perf_counter() - started if character else elapsed
            break
    process.kill()
    process.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--unpruned", type=Path)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each language-model case")
    args = parser.parse_args()
    from birdsdao.recognition.detector import MANIFEST, WEIGHTS_DIR, bundled_weights
    from birdsdao.recognition.photos import open_photo

    pruned = args.weights or bundled_weights("torch")
    unpruned = args.unpruned
    if unpruned is None and args.weights is None:
        unpruned = WEIGHTS_DIR / json.loads(MANIFEST.read_text(encoding="utf-8"))["files"]["unpruned"]["path"]
    with tempfile.TemporaryDirectory() as work:
        paths = photos(args.photos, Path(work))
        images = [open_photo(path) for path in paths]
        cases = {"unpruned, torch": (unpruned, "torch")} if unpruned else {}
        cases["pruned, torch"] = (pruned, "torch")
        if pruned.with_suffix(".onnx").is_file():
            cases["pruned, onnx"] = (pruned, "onnx")
        rows = detector_latency(cases, images)
        weights_args = [] if args.weights is None else ["--weights", str(pruned)]
        wall, peak, _ = child(["identify", str(paths[0]), "--no-describe", *weights_args])
        anyway = ["--certain", "0", "--conf", "0.001"]  # describe whatever the demonstration detector finds
        token = first_token(["identify", str(paths[0]), "--no-llm", *weights_args, *anyway])
        # the default language model alone, and with the bundled prefix (the default)
        tokens_llm = {label: [first_token(["identify", str(paths[0]), *weights_args, *anyway, *extra])
                              for _ in range(args.repeat)]
                      for label, extra in (("base model", ["--no-prefix"]), ("bundled prefix", []))}
    base = statistics.median(next(iter(rows.values())))
    print(f"{os.cpu_count()} CPU cores; {len(images)} photos; detector {pruned.name}")
    print("detectors interleaved photo by photo after a warm-up; × = ratio of medians to the first")
    print(f"{'':18} {'p50 ms':>7} {'IQR':>6} {'p95 ms':>7} {'speed ×':>8}")
    for label, times in rows.items():
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        middle = spread(times, 1000)
        print(f"{label:18} {middle.median:>7.1f} {middle.iqr:>6.1f} {p95 * 1000:>7.1f} "
              f"{base / statistics.median(times):>8.2f}")
    print(f"birds identify PHOTO --no-describe: {wall:.2f} s, peak {peak:.0f} MB (targets ≤ 3 s, ≤ 1.5 GB)")
    print(f"birds identify PHOTO --no-llm: first description line after {token:.2f} s")
    for label, times in tokens_llm.items():
        print(f"birds identify PHOTO ({label}): first description token after {statistics.median(times):.2f} s "
              f"(median of {len(times)})")


if __name__ == "__main__":
    main()

"""Detector speed for `birds identify`: pruned vs unpruned, PyTorch vs onnxruntime, and the whole command.

In one run, on the same photos (the mini BIRDS-525 valid photos, or generated ones):
  * detector latency p50/IQR/p95 per photo at the detector's image size: the pruned weights in PyTorch and in
    onnxruntime, and the unpruned sparse-trained weights in PyTorch, taking turns on each photo (A, B, C, A …),
    as ratios of medians to the unpruned;
  * `birds identify PHOTO --no-describe` as a new process: wall time and peak memory (target ≤ 3 s, ≤ 1.5 GB);
  * `birds identify PHOTO` with a description: time until the first description character, from the card
    text (--no-llm) and from the default language model, alone (--no-prefix) and with the bundled prefix.

    python bench/identify.py [--weights PRUNED.pt] [--unpruned SPARSE.pt] [--photos 40]
    python bench/identify.py --classifier   # the species classifier and bird gate (see classifier_bench)

Without --weights the bundled detector is used (weights/MANIFEST.json names the unpruned one too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    parser.add_argument("--classifier", action="store_true", help="only the species classifier and bird gate")
    parser.add_argument("--work", type=Path, default=ROOT / "weights" / "work", help="prepared sample datasets "
                        "and their feature caches (--classifier)")
    parser.add_argument("--parts", default="accuracy,gate,speed", help="of --classifier: accuracy,gate,speed")
    args = parser.parse_args()
    if args.classifier:
        classifier_bench(args.work, set(args.parts.split(",")))
        return
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


# ---- the species classifier and bird gate (`birds identify` with the bundled models) ------------------------
# Separate from the detector comparison above: python bench/identify.py --classifier


def non_bird_images() -> dict[str, object]:
    """Photos of no bird: scikit-image's bundled photos (a person, a cat, coffee, a rocket, a horse's
    silhouette, micrographs, text …) and synthetic images (noise, gradients, shapes, stripes, flat colours)."""
    import numpy as np
    from PIL import Image, ImageDraw
    from skimage import data

    images: dict[str, object] = {}
    for name in ("astronaut", "coffee", "chelsea", "cat", "rocket", "camera", "coins", "moon", "page", "text",
                 "horse", "clock", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "brick",
                 "grass", "gravel", "logo", "motorcycle_left", "shepp_logan_phantom", "eagle"):
        try:
            array = getattr(data, name)()
        except Exception:  # some need pooch downloads; only the bundled ones count
            continue
        if name == "eagle":
            continue  # a bird: not part of the non-bird set
        array = np.asarray(array).astype(np.float32) if np.asarray(array).dtype == bool else np.asarray(array)
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(float(array.max() - array.min()), 1e-9)).astype(np.uint8)
        images[f"skimage:{name}"] = Image.fromarray(array[..., :3] if array.ndim == 3 else array).convert("RGB")
    rng = np.random.default_rng(0)
    for number in range(8):
        images[f"noise:{number}"] = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    for number in range(6):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, 224)[:, None, None]
        images[f"gradient:{number}"] = Image.fromarray((top * (1 - ramp) + bottom * ramp).repeat(224, 1)
                                                       .astype(np.uint8))
    for number in range(6):
        image = Image.new("RGB", (256, 192), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.integers(0, 200, 2)
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((int(x), int(y), int(x + rng.integers(10, 80)), int(y + rng.integers(10, 80))),
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        images[f"shapes:{number}"] = image
    for number in range(4):
        stripes = (np.indices((224, 224)).sum(0) // (6 + 4 * number) % 2 * 255).astype(np.uint8)
        images[f"stripes:{number}"] = Image.fromarray(stripes).convert("RGB")
    for number in range(4):
        images[f"flat:{number}"] = Image.new("RGB", (224, 224), tuple(int(v) for v in rng.integers(0, 256, 3)))
    return images


def classifier_bench(work: Path, parts: set[str], photos_per_second: int = 60) -> None:
    """Accuracy of the recipe (fit on photos 1-3, score photo 4) on 161 and 525 species, the gate's pass and
    rejection rates over thresholds, and the bundled path's speed and memory (`parts`: which of the three)."""
    import numpy as np
    import torch

    from birdsdao.recognition.backbone import load_backbone
    from birdsdao.recognition.train_classifier import HEADS, extract_features, read_dataset, scores
    from birdsdao.species_cards import read_species_list

    torch.set_num_threads(2)
    source = MINI.parent
    if not source.is_dir():
        print(f"{source} is not here: the classifier section needs the sample photos")
        return
    backbone = load_backbone("lite0")
    for label, extra in (("525 species", ["--classes", "525"]),
                         ("161 species", ["--species-file", str(ROOT / "data" / "species161.txt")])):
        folder = work / f"bench-{label.split()[0]}"
        if not (folder / "data.yaml").is_file():
            subprocess.run([str(Path(sys.executable).parent / "birds"), "prepare-data", str(source), str(folder),
                            *extra, "--overwrite"], check=True, capture_output=True, cwd=ROOT)
        dataset = read_dataset(folder)
        cache = folder / ".cache" / "features-lite0"
        if not cache.is_dir() and (work / "bench-525" / ".cache" / "features-lite0").is_dir():
            # the same photos under the same names: the 525-species run's features serve (keys are checked)
            shutil.copytree(work / "bench-525" / ".cache" / "features-lite0", cache)
        train = extract_features(dataset.splits["train"], backbone, cache)
        val = extract_features(dataset.splits["val"], backbone, cache)
        if label.startswith("525"):
            everything = (dataset.classes, train, val)
            if "accuracy" not in parts:
                break  # the gate needs only these
        if "accuracy" not in parts:
            continue
        if label.startswith("161"):  # would one head over all 525 species serve the 161 as well?
            classes, all_train, all_val = everything
            head = HEADS["logistic-regression"](all_train.x, all_train.y, len(classes))
            mine = np.isin(np.array(classes)[all_val.y], dataset.classes)
            numbers = scores(head, all_val.x[mine], all_val.y[mine])
            print(f"525-species logistic regression scored on the 161 species' photos: top-1 {numbers['top1']:.3f}, "
                  f"top-5 {numbers['top5']:.3f} ({int(mine.sum())} photos)")
        for kind, fit in HEADS.items():
            started = time.perf_counter()
            head = fit(train.x, train.y, len(dataset.classes))
            numbers = scores(head, val.x, val.y)
            probs = head.probabilities(val.x)
            right = probs.argmax(1) == val.y
            sure = probs.max(1) >= 0.5
            print(f"{label}, {kind}: top-1 {numbers['top1']:.3f}, top-5 {numbers['top5']:.3f} on {len(val.y)} "
                  f"held-out photos (targets for 161: ≥ 0.80, ≥ 0.95); fit {time.perf_counter() - started:.1f} s; "
                  f"{sure.mean():.0%} above --certain 0.5, {right[sure].mean():.1%} of those right")
            if label.startswith("161"):
                open_set(head, train, val, everything, dataset.classes)
    if "gate" in parts:
        gate_section(backbone, everything, read_species_list())
    if "speed" in parts:
        speed_section(photos_per_second)


def open_set(head, train, val, everything, species161: list[str]) -> None:
    """What `--certain` does with a bird the classifier was not taught: every photo of the other 364 species of
    the sample can only be named wrongly, so the share named with certainty is the share misnamed as fact;
    beside it, how many held-out photos of the 161 species are named with certainty, and how many rightly.
    Then how well other signals than the best probability tell the two groups apart (AUROC)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from birdsdao.recognition.train_classifier import prototypes

    classes, all_train, all_val = everything
    known = np.isin(np.array(classes), species161)
    others = np.concatenate([all_train.x[~known[all_train.y]], all_val.x[~known[all_val.y]]])
    probs, probs_other = head.probabilities(val.x), head.probabilities(others)
    best, right = probs.max(axis=1), probs.argmax(axis=1) == val.y
    top5 = (np.argsort(-probs, axis=1)[:, :5] == val.y[:, None]).any(axis=1)
    print(f"  --certain: photo 4 of the 161 species named (of those right; of the rest, right species first / in "
          f"the top five) | the {len(others)} photos of the {int((~known).sum())} other species named as one of "
          f"the 161 (all wrongly)")
    for certain in (0.5, 0.6, 0.7, 0.8, 0.9):
        sure = best >= certain
        wrong = np.mean(probs_other.max(axis=1) >= certain)
        print(f"  {certain:.1f}: {sure.mean():6.1%} ({right[sure].mean():6.1%}; {right[~sure].mean():6.1%} / "
              f"{top5[~sure].mean():6.1%}) | {wrong:6.1%}")
    centres = prototypes(train.x, train.y, len(species161))

    def signals(x: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
        logits = x @ head.weight.T + head.bias
        top = logits.max(axis=1)
        ordered = np.sort(p, axis=1)
        return {"best probability": p.max(axis=1), "similarity to its prototype": (x * centres[p.argmax(1)]).sum(1),
                "largest logit": top, "energy": top + np.log(np.exp(logits - top[:, None]).sum(axis=1)),
                "margin over the second": ordered[:, -1] - ordered[:, -2]}

    mine, theirs = signals(val.x, probs), signals(others, probs_other)
    truth = np.r_[np.ones(len(val.x)), np.zeros(len(others))]
    print("  telling the 161's photos from the others, AUROC: " + ", ".join(
        f"{name} {roc_auc_score(truth, np.r_[mine[name], theirs[name]]):.3f}" for name in mine))


def gate_section(backbone, everything, species161: list[str]) -> None:
    """The gate's two numbers on bird photos the prototypes never saw (photo 4 of the 161 species, whose
    prototypes come from photos 1-3, and every photo of the other 364 species) and on non-bird images."""
    import numpy as np
    import torch

    from birdsdao.recognition.backbone import GATE_THRESHOLD, SIMILARITY_THRESHOLD
    from birdsdao.recognition.crops import to_input
    from birdsdao.recognition.train_classifier import prototypes

    classes, train, val = everything
    known = np.isin(np.array(classes), species161)
    centres = prototypes(train.x[known[train.y]], np.searchsorted(np.flatnonzero(known), train.y[known[train.y]]),
                         int(known.sum()))
    held_out = val.x[known[val.y]], val.bird[known[val.y]]
    unseen = (np.concatenate([train.x[~known[train.y]], val.x[~known[val.y]]]),
              np.concatenate([train.bird[~known[train.y]], val.bird[~known[val.y]]]))
    nonbirds = non_bird_images()
    with torch.inference_mode():
        features, bird = backbone(torch.from_numpy(to_input(list(nonbirds.values()), 224)))
    groups = {"photo 4 of the 161 species": held_out, "the 364 other species": unseen,
              "non-birds": (features.numpy(), bird.numpy())}
    similarity = {name: (x @ centres.T).max(axis=1) for name, (x, _) in groups.items()}
    print(f"bird gate: bird photos (whole photos) and {len(nonbirds)} non-bird images "
          f"({sum(name.startswith('skimage') for name in nonbirds)} scikit-image photos, the rest synthetic); "
          "similarity = cosine to the nearest of the 161 prototypes fitted on photos 1-3")
    for name, (_, probability) in groups.items():
        print(f"  {name} ({len(probability)}): bird probability 1st pct {np.percentile(probability, 1):.3f}, "
              f"max {probability.max():.3f}; similarity 1st pct {np.percentile(similarity[name], 1):.3f}, "
              f"max {similarity[name].max():.3f}")
    for bird_t, sim_t in ((0.05, 0.0), (0.3, 0.0), (0.0, 0.40), (0.05, 0.35), (0.05, 0.40), (0.1, 0.40),
                          (0.05, 0.45)):
        passed = {name: (probability >= bird_t) & (similarity[name] >= sim_t)
                  for name, (_, probability) in groups.items()}
        birds = np.concatenate([passed[name] for name in groups if name != "non-birds"])
        mark = "  <- bundled" if (bird_t, sim_t) == (GATE_THRESHOLD, SIMILARITY_THRESHOLD) else ""
        print(f"  bird ≥ {bird_t:.2f} and similarity ≥ {sim_t:.2f}: birds pass {birds.mean():.1%} (photo 4 "
              f"{passed['photo 4 of the 161 species'].mean():.1%}, other species "
              f"{passed['the 364 other species'].mean():.1%}; target ≥ 97%), non-birds rejected "
              f"{1 - passed['non-birds'].mean():.1%} (target ≥ 90%){mark}")
    names = list(nonbirds)
    passing = [names[i] for i in np.flatnonzero((groups["non-birds"][1] >= GATE_THRESHOLD)
                                                 & (similarity["non-birds"] >= SIMILARITY_THRESHOLD))]
    print("  non-bird images the bundled gate lets through: " + (", ".join(passing) or "none"))


def speed_section(photos_per_second: int) -> None:
    """Wall time and CPU time: with other work on the machine the wall time says little, while CPU seconds
    (user + system) stay near what a quiet machine spends; a quiet 2-core machine's wall time is at least
    the CPU time over 2."""
    import resource

    from birdsdao.recognition.classifier import bundled_classifier, read_folder

    read_folder(bundled_classifier())
    sample = sorted(MINI.glob("*/*.jpg"))
    walls, peaks, cpus = [], [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, peak, _ = child(["identify", str(sample[0]), "--no-describe"])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(wall)
        peaks.append(peak)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(f"birds identify PHOTO --no-describe (bundled detector + classifier, new process, median of 3): "
          f"{statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU, peak "
          f"{statistics.median(peaks):.0f} MB (targets ≤ 1.5 s, ≤ 300 MB); load average {os.getloadavg()[0]:.1f}")
    from birdsdao.recognition.identify import IdentifyOptions, identify_photos, open_recognition

    detector, classifier, gate_on = open_recognition()
    batch = sample[:photos_per_second]
    list(identify_photos(batch[:3], detector, IdentifyOptions(gate=gate_on), classifier))  # warm-up
    rates, cpu_rates = [], []
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        results = list(identify_photos(batch, detector, IdentifyOptions(gate=gate_on), classifier))
        rates.append(len(results) / (time.perf_counter() - started))
        cpu_rates.append(len(results) / (time.process_time() - cpu))
    print(f"batch of {len(batch)} photos (median of 3): {statistics.median(rates):.1f} photos/s wall, "
          f"{statistics.median(cpu_rates):.1f} photos per CPU second (2 cores: up to twice that per wall second; "
          f"target ≥ 20 photos/s); onnxruntime's default threads, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()

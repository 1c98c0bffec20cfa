"""What pruning buys on a CPU: params, GFLOPs and latency of a YOLOv8n pruned at several keep ratios.

The detector (a YOLOv8n from its yaml with BatchNorm scales spread out as after sparse training; --weights
a sparse-trained checkpoint, or `bundled` for weights/detector-unpruned.pt) is pruned at each --keep and
--round-to and exported to ONNX, keep 1.0 being the unpruned model through the same path. All models then
run on one input, fused as ultralytics predicts with them, in PyTorch and in onnxruntime with fixed
threads: the models take turns (A, B, C, A, B, C …, bench/timing.py) for --runs rounds after warm-up
rounds, each backend on its own. The table gives each model's median and interquartile range and the
ratio of its median to the unpruned model's median; --repeat runs the whole comparison again.

    python bench/prune_speed.py [--weights last.pt|bundled] [--keep 0.7 0.5] [--round-to 1 8 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import interleaved, spread  # noqa: E402

TARGET = 1.4  # keep 0.5 at least this many times faster, in onnxruntime and in PyTorch


@dataclass
class Variant:
    label: str
    keep: float
    round_to: int
    params: int
    gflops: float
    weights: Path
    onnx: Path


def random_sparse_checkpoint(path: Path) -> Path:
    import ultralytics
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml").model
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data = torch.rand(module.num_features) ** 3  # many small |γ|, as slimming leaves them
    torch.save({"model": model, "ema": None, "version": ultralytics.__version__, "train_args": {}}, path)
    return path


def bundled_unpruned() -> Path:
    from birdsdao.recognition.detector import MANIFEST, WEIGHTS_DIR

    return WEIGHTS_DIR / json.loads(MANIFEST.read_text(encoding="utf-8"))["files"]["unpruned"]["path"]


def build(weights: Path, keeps: list[float], round_tos: list[int], imgsz: int, work: Path) -> list[Variant]:
    from birdsdao.pruning.prune import PruneConfig, prune_detector
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    settings = [(1.0, 1)] + [(keep, round_to) for keep in keeps for round_to in round_tos]
    variants = []
    for keep, round_to in settings:
        with output_on_stderr():
            report = prune_detector(PruneConfig(weights=weights, keep=keep, round_to=round_to, imgsz=imgsz, onnx=True,
                                                out=work / f"keep{keep}-round{round_to}"))
        label = "unpruned" if keep == 1.0 else f"keep {keep:g} round {round_to}"
        variants.append(Variant(label, keep, round_to, report.params_after, report.gflops_after,
                                Path(report.weights), Path(report.onnx["path"])))
    return variants


def measure(variants: list[Variant], sample: torch.Tensor, threads: int, runs: int, warmup: int):
    """Seconds per call of every variant in each backend, the variants taking turns within a backend."""
    import onnxruntime
    from ultralytics import YOLO

    from birdsdao.training.ultralytics_adapter import output_on_stderr

    with output_on_stderr():
        models = {v.label: YOLO(str(v.weights)).model.float().fuse(verbose=False).eval() for v in variants}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = {v.label: onnxruntime.InferenceSession(str(v.onnx), options, providers=["CPUExecutionProvider"])
                for v in variants}
    feed = sample.numpy()
    with torch.inference_mode():
        torch_times = interleaved({label: (lambda _, m=model: m(sample)) for label, model in models.items()},
                                  runs, warmup)
    onnx_times = interleaved({label: (lambda _, s=s: s.run(None, {s.get_inputs()[0].name: feed}))
                              for label, s in sessions.items()}, runs, warmup)
    return {"torch": torch_times, "onnxruntime": onnx_times}


def print_run(variants: list[Variant], times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """The table of one comparison; returns each variant's speed-up (ratio of medians) per backend."""
    base = variants[0]
    medians = {backend: {label: spread(values, 1000) for label, values in per.items()}
               for backend, per in times.items()}
    print(f"{'model':>20} {'params':>10} {'GFLOPs':>7} | {'torch ms':>8} {'IQR':>6} {'ORT ms':>8} {'IQR':>6} | "
          f"{'params':>6} {'GFLOPs':>6} {'torch ×':>7} {'ORT ×':>6}")
    speedups: dict[str, dict[str, float]] = {}
    for v in variants:
        t, o = medians["torch"][v.label], medians["onnxruntime"][v.label]
        speedups[v.label] = {"torch": medians["torch"][base.label].median / t.median,
                             "onnxruntime": medians["onnxruntime"][base.label].median / o.median}
        print(f"{v.label:>20} {v.params:>10,} {v.gflops:>7.2f} | {t.median:>8.1f} {t.iqr:>6.1f} {o.median:>8.1f} "
              f"{o.iqr:>6.1f} | {v.params / base.params:>6.2f} {v.gflops / base.gflops:>6.2f} "
              f"{speedups[v.label]['torch']:>7.2f} {speedups[v.label]['onnxruntime']:>6.2f}")
    return speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a sparse-trained checkpoint, or `bundled` (default: random sparse-like)")
    parser.add_argument("--keep", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--round-to", type=int, nargs="+", help="default: birds prune's default")
    parser.add_argument("--runs", type=int, default=20, help="timed rounds per comparison")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole comparison this many times")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--json", type=Path, help="also write every time measured to this file")
    args = parser.parse_args()
    from birdsdao.pruning.prune import PruneConfig

    round_tos = args.round_to or [PruneConfig.round_to]
    torch.set_num_threads(args.threads)
    sample = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    results = []
    with tempfile.TemporaryDirectory() as work:
        if args.weights == "bundled":
            weights, described = bundled_unpruned(), "the bundled detector's unpruned weights"
        elif args.weights:
            weights, described = Path(args.weights), f"weights {args.weights}"
        else:
            weights = random_sparse_checkpoint(Path(work) / "yolov8n-random.pt")
            described = "YOLOv8n, random init with sparse-like |γ|"
        variants = build(weights, args.keep, round_tos, args.imgsz, Path(work))
        for number in range(1, args.repeat + 1):
            load_before = os.getloadavg()[0]  # other work on the machine: the spread's likely cause
            times = measure(variants, sample, args.threads, args.runs, args.warmup)
            print(f"\nrun {number}/{args.repeat}: {described}; {args.imgsz} px, {args.threads} threads; median and "
                  f"IQR of {args.runs} interleaved rounds after {args.warmup} warm-up rounds; × = ratio of medians; "
                  f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            results.append({"times": times, "speedups": print_run(variants, times)})
    print()
    for v in variants:
        if v.keep == 0.5:
            runs = [result["speedups"][v.label] for result in results]
            met = all(min(r["torch"], r["onnxruntime"]) >= TARGET for r in runs)
            print(f"target keep 0.5 ≥ {TARGET}× in onnxruntime and PyTorch, {v.label}: "
                  + ", ".join(f"ORT {r['onnxruntime']:.2f}× torch {r['torch']:.2f}×" for r in runs)
                  + f" → {'met' if met else 'NOT met'} in every run")
    if args.json:
        args.json.write_text(json.dumps({
            "weights": described, "imgsz": args.imgsz, "threads": args.threads, "runs": args.runs,
            "variants": [{**vars(v), "weights": str(v.weights), "onnx": str(v.onnx)} for v in variants],
            "results": results}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

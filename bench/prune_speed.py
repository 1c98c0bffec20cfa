"""What pruning buys on a CPU: params, GFLOPs and latency of YOLOv8n at keep 1.0 / 0.7 / 0.5.

A YOLOv8n from its yaml, with BatchNorm scales spread out as after sparse training (or --weights, a
sparse-trained checkpoint), is pruned at each keep ratio and exported to ONNX; every model then runs
on the same 640-pixel input in PyTorch and in onnxruntime, with fixed threads, warm-up runs first and
the median of --runs timed runs. Figures are ratios to the unpruned model measured in the same run.

    python bench/prune_speed.py [--weights last.pt] [--runs 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def median_ms(run, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()
    import onnxruntime
    from ultralytics import YOLO

    from birdsdao.pruning.prune import PruneConfig, prune_detector
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    sample = torch.rand(1, 3, args.imgsz, args.imgsz)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        weights = args.weights or random_sparse_checkpoint(work / "yolov8n-random.pt")
        for keep in (1.0, 0.7, 0.5):
            with output_on_stderr():
                report = prune_detector(PruneConfig(weights=weights, keep=keep, imgsz=args.imgsz, onnx=True,
                                                    out=work / f"keep{keep}"))
            model = YOLO(report.weights).model.float().eval()
            session = onnxruntime.InferenceSession(report.onnx["path"], options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: sample.numpy()}
            with torch.inference_mode():
                torch_ms = median_ms(lambda m=model: m(sample), args.runs)
            onnx_ms = median_ms(lambda s=session, f=feed: s.run(None, f), args.runs)
            rows.append((keep, report.params_after, report.gflops_after, torch_ms, onnx_ms))
    base = rows[0]
    print(f"YOLOv8n at {args.imgsz} px, {args.threads} threads, median of {args.runs} runs after warm-up; "
          f"{'weights: ' + str(args.weights) if args.weights else 'random init with sparse-like |γ|'}")
    print(f"{'keep':>5} {'params':>10} {'GFLOPs':>7} {'torch ms':>9} {'ORT ms':>8} | "
          f"{'params':>7} {'GFLOPs':>7} {'torch ×':>8} {'ORT ×':>6}")
    for keep, params, gflops, torch_ms, onnx_ms in rows:
        print(f"{keep:>5.1f} {params:>10,} {gflops:>7.2f} {torch_ms:>9.1f} {onnx_ms:>8.1f} | "
              f"{params / base[1]:>7.2f} {gflops / base[2]:>7.2f} {base[3] / torch_ms:>8.2f} {base[4] / onnx_ms:>6.2f}")
    print(f"target: keep 0.5 ≥ 1.4× faster in onnxruntime → {base[4] / rows[-1][4]:.2f}×")


if __name__ == "__main__":
    main()

"""Where onnxruntime spends its time in pruned detectors: its per-node profiler, summed by kind of node.

The models are the ones bench/prune_speed.py builds (the same --weights, --keep and --round-to). They take
turns for --runs rounds with SessionOptions.enable_profiling; the kernel times of each model's nodes are
summed per kind and divided by the runs. onnxruntime's CPU provider rewrites convolutions into a blocked channel layout
(NCHWc, 8 channels a block with AVX2, 16 with AVX-512) when their channel counts allow it, adding
ReorderInput/ReorderOutput nodes where the layout changes; the optimized graph, saved alongside, tells
which convolutions were rewritten, so the table splits them ("Conv NCHWc") from the rest ("Conv").

    python bench/ort_profile.py [--weights last.pt|bundled] [--keep 0.5] [--round-to 1 8 16] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.prune_speed import build, bundled_unpruned, random_sparse_checkpoint  # noqa: E402
from bench.timing import interleaved  # noqa: E402


def node_kinds(optimized: Path) -> dict[str, str]:
    """Node name → kind in the graph onnxruntime actually runs."""
    import onnx

    kinds = {}
    for node in onnx.load(str(optimized)).graph.node:
        if node.op_type == "Conv":
            kinds[node.name] = "Conv NCHWc" if node.domain == "com.microsoft.nchwc" else "Conv"
        elif node.op_type in ("ReorderInput", "ReorderOutput"):
            kinds[node.name] = "Reorder"
        else:
            kinds[node.name] = node.op_type
    return kinds


def open_profiled(model: Path, threads: int, work: Path):
    """A session that profiles every run and saves the graph it optimized (to tell NCHWc convolutions apart)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.optimized_model_filepath = str(work / f"{model.parent.name}-optimized.onnx")
    options.enable_profiling = True
    options.profile_file_prefix = str(work / model.parent.name)
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return session, Path(options.optimized_model_filepath)


def summarize(trace_path: Path, optimized: Path, runs: int) -> tuple[dict[str, float], Counter]:
    """Milliseconds per run of each kind of node, and how many nodes of each kind the optimized graph has."""
    trace = json.loads(trace_path.read_text(encoding="utf-8"))
    kinds = node_kinds(optimized)
    per_kind: dict[str, float] = defaultdict(float)
    seen: set[str] = set()
    for event in trace:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            node = name.removesuffix("_kernel_time")
            if node not in seen:  # the warm-up run, left out
                seen.add(node)
                continue
            per_kind[kinds.get(node, event.get("args", {}).get("op_name", "?"))] += event["dur"] / 1000 / runs
    return dict(per_kind) | {"total": sum(per_kind.values())}, Counter(kinds.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a sparse-trained checkpoint, or `bundled` (default: random sparse-like)")
    parser.add_argument("--keep", type=float, nargs="+", default=[0.5])
    parser.add_argument("--round-to", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.weights == "bundled":
            weights = bundled_unpruned()
        elif args.weights:
            weights = Path(args.weights)
        else:
            weights = random_sparse_checkpoint(work / "yolov8n-random.pt")
        variants = build(weights, args.keep, args.round_to, args.imgsz, work)
        sessions = {v.label: open_profiled(v.onnx, args.threads, work) for v in variants}
        feed = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
        # the models take turns, as in prune_speed.py, so that changing load falls on all of them alike
        interleaved({label: (lambda _, s=session: s.run(None, {s.get_inputs()[0].name: feed}))
                     for label, (session, _) in sessions.items()}, runs=args.runs, warmup=1)
        results = {label: summarize(Path(session.end_profiling()), optimized, args.runs)
                   for label, (session, optimized) in sessions.items()}
    kinds = sorted({kind for times, _ in results.values() for kind in times if kind != "total"},
                   key=lambda kind: -max(times.get(kind, 0) for times, _ in results.values()))
    print(f"onnxruntime per-node profile, {args.imgsz} px, {args.threads} threads, kernel ms per run "
          f"(mean of {args.runs} interleaved runs after 1 warm-up run); nodes of each kind in brackets")
    print(f"{'kind':>12} " + " ".join(f"{label:>22}" for label in results))
    for kind in kinds + ["total"]:
        cells = []
        for times, counts in results.values():
            count = f"[{counts[kind]}]" if kind != "total" else ""
            cells.append(f"{times.get(kind, 0):>15.1f} {count:>6}")
        print(f"{kind:>12} " + " ".join(cells))


if __name__ == "__main__":
    main()

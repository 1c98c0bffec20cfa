"""The CUDA lifecycle in one run, with the time and peak GPU memory of each step (bench/gpu_check.sh runs it).

    python bench/gpu_check.py --data SAMPLE/data.yaml --out gpu_check.json

Steps: P-Tuning v2 for 20 steps on 4- and 8-bit bases (a tiny ChatGLM2 through birdsdao's own implementation and a
tiny Gemma 3 through transformers) and an answer with each prefix; `train --sparse` for 3 epochs with AMP at 224 px
beside the same training without the penalty (the penalty must move γ as on the CPU); `prune --keep 0.5` of the
CUDA-trained checkpoint; one epoch of fine-tuning the pruned network on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.tiny_models and tests.chatglm2_tiny build the tiny bases

PTUNE_RECORDS = [
    {"instruction": "丹顶鹤吃什么？", "input": "", "output": "丹顶鹤吃鱼、虾和水草。"},
    {"instruction": "What does the bald eagle eat?", "input": "", "output": "Mostly fish."},
    {"instruction": "白头海雕生活在哪里？", "input": "", "output": "白头海雕生活在北美洲。"},
] * 4


def measure(name: str, work, steps: list[dict]) -> object:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result, extra = work()
    torch.cuda.synchronize()
    row = {"step": name, "seconds": round(time.perf_counter() - start, 2),
           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1), **extra}
    steps.append(row)
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return result


def ptune_steps(work: Path, steps: list[dict]) -> None:
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune
    from birdsdao.language_model.runtime import load_answering_model
    from tests.chatglm2_tiny import make_folder
    from tests.tiny_models import make_tiny_gemma3

    data = work / "records.json"
    data.write_text(json.dumps(PTUNE_RECORDS, ensure_ascii=False), encoding="utf-8")
    bases = {"chatglm2-tiny": make_folder(work / "chatglm2"), "gemma3-tiny": make_tiny_gemma3(work / "gemma3")}
    for name, folder in bases.items():
        for bits in (4, 8):
            config = PtuneConfig(data=data, output=work / f"prefix-{name}-{bits}", base_model=str(folder),
                                 pre_seq_len=4, prefix_projection=True, lr=5e-2, batch_size=2,
                                 gradient_accumulation_steps=2, max_steps=20, save_steps=20, logging_steps=4,
                                 val_split=0.0, max_target_length=8, quantization_bit=bits, device="cuda")

            def tune(config=config):
                losses = []
                result = run_ptune(config, work / "models", progress=lambda step, total, loss: losses.append(loss))
                losses = [loss for loss in losses if loss is not None]
                return result, {"first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}

            result = measure(f"ptune {name} {bits}-bit, 20 steps", tune, steps)

            def answer(folder=folder, bits=bits, prefix=Path(result.prefix)):
                model = load_answering_model(str(folder), work / "models", prefix=prefix, device="cuda",
                                             quantization_bit=bits)
                text = "".join(stream_text(model, "问：丹顶鹤吃什么？\n答：", GenerationSettings(max_new_tokens=16)))
                return text, {"answer": text}

            measure(f"answer {name} {bits}-bit with its prefix", answer, steps)


def detector_steps(data: Path, work: Path, steps: list[dict]) -> None:
    from birdsdao.pruning.finetune import FinetuneConfig, finetune_pruned
    from birdsdao.pruning.prune import PruneConfig, prune_detector
    from birdsdao.training.train import TrainConfig, train_detector

    quiet = {"plots": False, "amp": True}  # plots would fetch a font; AMP is what this check is about
    runs = {}
    for sparse in (True, False):
        config = TrainConfig(data=data, epochs=3, imgsz=224, batch=16, workers=4, project=work / "train",
                             name="sparse" if sparse else "plain", seed=0, sparse=sparse, device="0", overrides=quiet)

        def train(config=config):
            run = train_detector(config)
            return run, {"sparsity_last": run.sparsity["last"], "metrics": run.metrics}

        runs[sparse] = measure(f"train{' --sparse' if sparse else ''} 3 epochs AMP 224 px", train, steps)
    sparse, plain = runs[True].sparsity["last"], runs[False].sparsity["last"]
    steps.append({"step": "check: the penalty moved γ", "sparse_mean_abs_gamma": sparse["mean_abs_gamma"],
                  "plain_mean_abs_gamma": plain["mean_abs_gamma"],
                  "passed": sparse["mean_abs_gamma"] < plain["mean_abs_gamma"]})

    def prune():
        report = prune_detector(PruneConfig(weights=Path(runs[True].prune), keep=0.5, imgsz=224))
        return report, {"params_before": report.params_before, "params_after": report.params_after}

    report = measure("prune --keep 0.5", prune, steps)

    def finetune():
        run = finetune_pruned(FinetuneConfig(data=data, weights=Path(report.weights), epochs=1, imgsz=224, batch=16,
                                             workers=4, project=work / "finetune", device="0", overrides=quiet))
        return run, {"params": run.params, "kept_pruned_structure": run.params == report.params_after}

    measure("finetune 1 epoch AMP 224 px", finetune, steps)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset's data.yaml")
    parser.add_argument("--out", type=Path, required=True, help="the JSON report to write")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here")
    steps: list[dict] = []
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": steps}
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        parts = (lambda: ptune_steps(Path(scratch), steps), lambda: detector_steps(args.data, Path(scratch), steps))
        for part in parts:
            try:
                part()
            except Exception as exc:  # record it and go on: device time is short, the other part still tells
                failures.append(f"{type(exc).__name__}: {exc}")
                print(f"gpu_check: {failures[-1]}", file=sys.stderr, flush=True)
    report["failures"] = failures
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, args.out)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

"""The language model on this CPU: load times, generation speed, P-Tuning throughput and memory.

Measured in one run, each as a ratio to its baseline:
  * load: the default model cold (GGUF conversion into an empty folder) vs cached (the converted folder);
  * generation tokens/s, greedy, fp32 vs `speed_up_for_cpu` (bfloat16 body, int8 output layer), with and
    without a prefix, and the BLEU-4 / ROUGE of both against the reference answers below, so that the
    speed does not hide a loss of quality;
  * P-Tuning samples/s and peak memory (RSS) at the original's settings (pre_seq_len 128, source 64,
    target 128, batch 1), in a child process.

    python bench/llm.py [--tokens 32] [--ptune-steps 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A few facts to score answers against (the bundled tuning set is separate work).
QA = [
    ("丹顶鹤吃什么？", "丹顶鹤吃鱼、虾、螺、昆虫和水生植物。"),
    ("白头海雕是哪个国家的国鸟？", "白头海雕是美国的国鸟。"),
    ("企鹅会飞吗？", "企鹅不会飞，但很会游泳。"),
    ("What does a bald eagle mostly eat?", "Bald eagles mostly eat fish."),
    ("Can ostriches fly?", "No. Ostriches cannot fly, but they run fast."),
    ("孔雀开屏的是雄鸟还是雌鸟？", "开屏的是雄孔雀。"),
]


def ptune_child(models: str, steps: str) -> None:
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "qa.json"
        data.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in QA] * 4,
                                   ensure_ascii=False), encoding="utf-8")
        result = run_ptune(PtuneConfig(data=data, output=Path(work) / "prefix", max_steps=int(steps),
                                       gradient_accumulation_steps=4, val_split=0), Path(models))
    # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's size at fork
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"samples_per_second": result.train["train_samples_per_second"], "peak_mb": round(peak)}))


def tokens_per_second(model, tokenizer, prompts: list[str], tokens: int) -> tuple[float, list[str]]:
    import torch

    from birdsdao.language_model.generate import generate_ids

    answers, seconds, count = [], 0.0, 0
    with torch.inference_mode():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            started = time.perf_counter()
            out = generate_ids(model, inputs["input_ids"], inputs["attention_mask"], max_new_tokens=tokens,
                               do_sample=False, repetition_penalty=1.2)
            seconds += time.perf_counter() - started
            count += out.shape[1] - inputs["input_ids"].shape[1]
            answers.append(tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return count / seconds, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ptune-steps", type=int, default=4)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return ptune_child(*args.child)
    from birdsdao.language_model.models import load_model
    from birdsdao.language_model.prompts import build_prompt
    from birdsdao.language_model.ptune import PtuneConfig, load_prefix, run_ptune, text_scores
    from birdsdao.language_model.speed import speed_up_for_cpu

    with tempfile.TemporaryDirectory() as work:
        models = Path(work) / "models"
        started = time.perf_counter()
        load_model(None, models)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        loaded = load_model(None, models)
        cached = time.perf_counter() - started
        prompts = [build_prompt(loaded.tokenizer, loaded.family, q)[0] for q, _ in QA]
        references = [a for _, a in QA]
        data = Path(work) / "qa.json"
        data.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in QA] * 4,
                                   ensure_ascii=False), encoding="utf-8")
        prefix = run_ptune(PtuneConfig(data=data, output=Path(work) / "prefix", pre_seq_len=32, max_steps=8,
                                       gradient_accumulation_steps=2, val_split=0), models).prefix
        rows = {}
        for label, make in (
            ("fp32", lambda: load_model(None, models).model),
            ("fast", lambda: speed_up_for_cpu(load_model(None, models).model)),
            ("fp32 + prefix", lambda: load_prefix(load_model(None, models), Path(prefix))),
            ("fast + prefix", lambda: speed_up_for_cpu(load_prefix(load_model(None, models), Path(prefix)))),
        ):
            rate, answers = tokens_per_second(make(), loaded.tokenizer, prompts, args.tokens)
            rows[label] = (rate, text_scores(answers, references))
        child = subprocess.run([sys.executable, __file__, "--child", str(models), str(args.ptune_steps)],
                               check=True, capture_output=True, text=True)
        ptune = json.loads(child.stdout.strip().splitlines()[-1])

    print(f"load {loaded.name}: cold {cold:.1f} s (GGUF conversion), cached {cached:.1f} s → {cold / cached:.1f}×")
    print(f"greedy generation, {args.tokens} new tokens × {len(QA)} prompts, repetition penalty 1.2:")
    print(f"{'':16} {'tokens/s':>9} {'× fp32':>7} {'BLEU-4':>7} {'ROUGE-1':>8} {'ROUGE-L':>8}")
    for label, (rate, scores) in rows.items():
        base = rows["fp32 + prefix" if "prefix" in label else "fp32"][0]
        print(f"{label:16} {rate:>9.1f} {rate / base:>7.2f} {scores['bleu-4']:>7.2f} {scores['rouge-1']:>8.2f} "
              f"{scores['rouge-l']:>8.2f}")
    print(f"P-Tuning (pre_seq_len 128, source 64, target 128, batch 1): {ptune['samples_per_second']} samples/s, "
          f"peak RSS {ptune['peak_mb']} MB (ChatGLM2-6B INT4 on a GPU: 2.886 samples/s, 6.7 GB)")


if __name__ == "__main__":
    main()

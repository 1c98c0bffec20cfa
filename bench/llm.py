"""The language model on this CPU: load times, generation speed, P-Tuning throughput and memory.

Measured in one run, each as a ratio to its baseline:
  * load: the default model cold (GGUF conversion into an empty folder) vs cached (the converted folder);
  * generation tokens/s, greedy, fp32 vs `speed_up_for_cpu` (a bfloat16 output layer), with and
    without a prefix, and the BLEU-4 / ROUGE of both against the reference answers below, so that the
    speed does not hide a loss of quality;
  * P-Tuning samples/s and peak memory (RSS) at the original's settings (pre_seq_len 128, source 64,
    target 128, batch 1), in a child process.

    python bench/llm.py [--tokens 32] [--ptune-steps 4]

With the [fast] extra installed, `--part engines` compares llama.cpp with transformers (docs/llm.md), interleaved
(A, B, A, B …) and reported as medians:
  * first token of `birds ask QUESTION --generate` (English, Chinese) in a new process, the built-in KB built,
    caches warm;
  * greedy decoding tokens/s with the bundled prefix;
  * the bundled prefix's held-out evaluation (BLEU-4, ROUGE on data/ptune/dev.json, as `birds ptune` scores it)
    on each engine.

    python bench/llm.py --part engines [--rounds 3] [--samples 24]

`--part first-token` and `--part heldout --samples N` run the first of those, and the last (transformers float32
vs llama.cpp, on N records), alone.

`--part output-layer` asks what a smaller output layer would buy on llama.cpp: the GGUF's 262,144 × 640 embedding
table (Q8_0, also its output layer) requantized by llama.cpp's own quantizer to 5 and 4 bits, decoding interleaved
with the packaged file, and how often each then chooses other tokens than the packaged file does on held-out
questions (greedy answers identical, top-1 token the same at each step of the packaged file's answer).
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


ASK = "What does a bald eagle eat?"
ASK_ZH = "白头海雕吃什么？"


def first_token_seconds(home: Path, engine: str, question: str = ASK, tokens: int = 1) -> float:
    """From starting `birds ask QUESTION --generate` to the first byte of its answer on stdout (messages go to
    stderr). A grounded answer is held back until the faithfulness guard has read all of it, so with
    `tokens=1` this is the first token from a new process (plus the guard's look at it); with more, the
    whole answer."""
    import os
    import shutil

    env = {**os.environ, "BIRDS_HOME": str(home), "BIRDS_LLM_ENGINE": engine}
    started = time.perf_counter()
    process = subprocess.Popen([shutil.which("birds") or "birds", "ask", question, "--generate",
                                "--max-new-tokens", str(tokens)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env)
    first = process.stdout.read(1)
    seconds = time.perf_counter() - started
    process.kill()
    process.wait()
    if not first:
        raise RuntimeError(f"birds ask printed no answer with {engine}")
    return seconds


def decode_rate(model, prompts: list[str], tokens: int) -> float:
    """Greedy tokens/s of `stream_text` after the first token (the decode phase, prefill excluded)."""
    from birdsdao.language_model.generate import GenerationSettings, stream_text

    settings = GenerationSettings(max_new_tokens=tokens, repetition_penalty=1.2)
    seconds = count = 0.0
    for prompt in prompts:
        pieces = stream_text(model, prompt, settings)
        next(pieces)
        started = time.perf_counter()
        count += sum(1 for _ in pieces)  # a piece is about a token on both engines; counted alike
        seconds += time.perf_counter() - started
    return count / seconds


def heldout_scores(model, samples: int) -> dict[str, float]:
    """The bundled prefix's held-out evaluation as `birds ptune --eval-only` generates it (first `samples`
    records of data/ptune/dev.json, prompt cut to 64 tokens, 96 new, greedy, repetition penalty 1.2)."""
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.prompts import build_prompt
    from birdsdao.language_model.ptune import text_scores
    from birdsdao.language_model.ptune_data import read_examples

    records = read_examples(ROOT / "data" / "ptune" / "dev.json")[0][:samples]
    predictions = []
    for example in records:
        prompt, stops = build_prompt(model.tokenizer, model.family, example.question)
        text = "".join(stream_text(model, prompt, GenerationSettings(max_new_tokens=96, repetition_penalty=1.2)))
        for stop in stops:
            text = text.split(stop)[0]
        predictions.append(text.strip())
    return text_scores(predictions, [example.answer for example in records])


def bench_home() -> Path:
    """BIRDS_BENCH_HOME (caches kept between runs), else a new temporary folder."""
    import os

    return Path(os.environ.get("BIRDS_BENCH_HOME") or tempfile.mkdtemp(prefix="birds-bench-"))


def first_tokens(home: Path, rounds: int) -> None:
    """`birds ask --generate` from a new process on each engine, in English and Chinese, interleaved (A, B, A,
    B …), all caches warm."""
    import os
    import statistics

    from birdsdao.language_model.llama_engine import idle_cores

    print(f"BIRDS_HOME {home}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(llama.cpp threads now: {idle_cores()})")
    # warm every cache first: the KB and its snapshot, jieba's index, the converted model, the assembled GGUF,
    # the prefix's llama.cpp state
    for question in (ASK, ASK_ZH):
        subprocess.run(["birds", "ask", question, "--no-llm"], env={**os.environ, "BIRDS_HOME": str(home)},
                       check=True, capture_output=True)
    engines = ("transformers", "llama.cpp")
    for engine in engines:
        first_token_seconds(home, engine)
    runs = {(label, engine): [] for label in ("first token, English", "first token, Chinese", "the answer, English")
            for engine in engines}
    for _ in range(rounds):
        for engine in engines:
            runs["first token, English", engine].append(first_token_seconds(home, engine))
            runs["first token, Chinese", engine].append(first_token_seconds(home, engine, ASK_ZH))
            runs["the answer, English", engine].append(first_token_seconds(home, engine, tokens=160))
    print(f"birds ask QUESTION --generate, new process, KB built, {rounds} interleaved runs, seconds to the first "
          f"token (--max-new-tokens 1) and to the whole answer (160 tokens at most); English '{ASK}', "
          f"Chinese '{ASK_ZH}':")
    for (label, engine), times in runs.items():
        runs_text = ", ".join(f"{t:.1f}" for t in times)
        print(f"  {label:22} {engine:12} median {statistics.median(times):5.1f}  (runs: {runs_text})", flush=True)


def engines(rounds: int, samples: int, tokens: int) -> None:
    import statistics

    from birdsdao.language_model.llama_engine import llama_cpp_available
    from birdsdao.language_model.runtime import BUNDLED_PREFIX, load_answering_model

    if not llama_cpp_available():
        raise SystemExit("llama-cpp-python is not installed: pip install 'birdsdao[fast]' (docs/llm.md)")
    home = bench_home()
    models = home / "models"
    first_tokens(home, rounds)

    loaded = {engine: load_answering_model(None, models, prefix=BUNDLED_PREFIX, engine=engine)
              for engine in ("transformers", "llama.cpp")}
    from birdsdao.language_model.prompts import build_prompt

    prompts = [build_prompt(loaded["llama.cpp"].tokenizer, "gemma3_text", q)[0] for q, _ in QA]
    rates = {engine: [] for engine in loaded}
    for _ in range(rounds):
        for engine, model in loaded.items():
            rates[engine].append(decode_rate(model, prompts, tokens))
    print(f"decode with the bundled prefix, greedy, {tokens} tokens × {len(prompts)} prompts, {rounds} rounds:")
    for engine, values in rates.items():
        print(f"  {engine:12} median {statistics.median(values):5.1f} tokens/s")
    reference = load_answering_model(None, models, prefix=BUNDLED_PREFIX, engine="transformers", fast=False)
    print(f"bundled prefix, held-out evaluation ({samples} records of data/ptune/dev.json):")
    print(f"  {'':26} {'BLEU-4':>7} {'ROUGE-1':>8} {'ROUGE-2':>8} {'ROUGE-L':>8}")
    for label, model in (("transformers float32", reference), ("transformers bf16 head", loaded["transformers"]),
                         ("llama.cpp Q4_K_M", loaded["llama.cpp"])):
        scores = heldout_scores(model, samples)
        print(f"  {label:26} {scores['bleu-4']:>7.2f} {scores['rouge-1']:>8.2f} {scores['rouge-2']:>8.2f} "
              f"{scores['rouge-l']:>8.2f}")


def heldout(samples: int) -> None:
    """The bundled prefix's held-out evaluation alone, transformers float32 (the reference) vs llama.cpp: on more
    records than `--part engines` has time for, since one answer that takes another token at a near-tie moves
    ROUGE on 24 answers by points."""

    from birdsdao.language_model.runtime import BUNDLED_PREFIX, load_answering_model

    models = bench_home() / "models"
    print(f"bundled prefix, held-out evaluation ({samples} records of data/ptune/dev.json):")
    print(f"  {'':26} {'BLEU-4':>7} {'ROUGE-1':>8} {'ROUGE-2':>8} {'ROUGE-L':>8}")
    rows = {}
    for label, engine, fast in (("transformers float32", "transformers", False),
                                ("llama.cpp Q4_K_M", "llama.cpp", True)):
        model = load_answering_model(None, models, prefix=BUNDLED_PREFIX, engine=engine, fast=fast)
        rows[label] = scores = heldout_scores(model, samples)
        del model
        print(f"  {label:26} {scores['bleu-4']:>7.2f} {scores['rouge-1']:>8.2f} {scores['rouge-2']:>8.2f} "
              f"{scores['rouge-l']:>8.2f}", flush=True)
    first, second = rows.values()
    print(f"  {'difference':26} " + " ".join(f"{second[key] - first[key]:>+{width}.2f}" for key, width in
                                             (("bleu-4", 7), ("rouge-1", 8), ("rouge-2", 8), ("rouge-l", 8))))


def requantized_gguf(source: Path, folder: Path, kind: str) -> Path:
    """`source` with its token embedding table (Gemma's output layer too) requantized to `kind` by llama.cpp;
    every other tensor is copied as it is."""
    import ctypes

    import llama_cpp

    from birdsdao.language_model.llama_engine import silence_llama_cpp_logs

    silence_llama_cpp_logs(llama_cpp)
    target = folder / f"{source.stem}-{kind}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M  # the packaged file's: its other tensors stay as they are
    params.allow_requantize = True
    params.token_embedding_type = getattr(llama_cpp, f"GGML_TYPE_{kind.upper()}")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not requantize {source} to {kind}")
    return target


def read_rate(megabytes: int = 178, threads: int = 2, rounds: int = 5) -> float:
    """GB/s at which `threads` threads read an array of `megabytes` (the best of `rounds`): how fast a layer of
    that size can be streamed from memory here at most."""
    import threading

    import numpy as np

    parts = np.array_split(np.ones(megabytes * 1_000_000 // 8, dtype=np.int64), threads)
    best = float("inf")
    for _ in range(rounds):
        workers = [threading.Thread(target=part.sum) for part in parts]  # numpy lets go of the GIL as it sums
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.perf_counter() - started)
    return megabytes / 1000 / best


def output_layer(rounds: int, samples: int, tokens: int) -> None:
    import statistics

    import numpy as np

    from birdsdao.language_model.generate import GenerationSettings
    from birdsdao.language_model.llama_engine import DEFAULT_FINGERPRINTS, LlamaCppModel, default_gguf, read_prefix
    from birdsdao.language_model.prompts import build_prompt
    from birdsdao.language_model.ptune_data import read_examples
    from birdsdao.language_model.runtime import BUNDLED_PREFIX

    packaged = default_gguf(bench_home() / "models")
    fingerprint = next(iter(DEFAULT_FINGERPRINTS.values()))
    with tempfile.TemporaryDirectory() as work:
        files = {"Q8_0 (packaged)": packaged}
        files |= {kind: requantized_gguf(packaged, Path(work), kind) for kind in ("q5_0", "q4_0", "iq4_nl")}
        models = {}
        for label, path in files.items():
            model = LlamaCppModel(path, fingerprint=fingerprint, threads=2)
            model.set_prefix(read_prefix(BUNDLED_PREFIX, fingerprint, model.layers, model.heads))
            models[label] = model
        prompts = [build_prompt(model.tokenizer, model.family, q)[0] for q, _ in QA]
        rates = {label: [] for label in models}
        for _ in range(rounds):
            for label, model in models.items():
                rates[label].append(decode_rate(model, prompts, 64))

        settings = GenerationSettings(max_new_tokens=tokens, repetition_penalty=1.2)
        records = read_examples(ROOT / "data" / "ptune" / "dev.json")[0][:samples]
        reference = models["Q8_0 (packaged)"]
        questions = [reference.tokenize(build_prompt(reference.tokenizer, reference.family, r.question)[0])
                     for r in records]

        def answer(model, ids):
            return list(model.generate_ids(ids, tokens, settings))

        def tops(model, ids, answer_ids):  # the best token at each step of the reference's answer
            steps = [model.start(ids)] + [model.step(token) for token in answer_ids[:-1]]
            return [int(np.argmax(logits)) for logits in steps]

        answers = [answer(reference, ids) for ids in questions]
        reference_tops = [tops(reference, ids, a) for ids, a in zip(questions, answers, strict=True)]
        print(f"decode with the bundled prefix, greedy, 64 tokens × {len(prompts)} prompts, {rounds} rounds, "
              f"interleaved; then {len(records)} held-out questions, {tokens} tokens, against the packaged file:")
        print(f"  {'output layer':16} {'tokens/s':>9} {'same answer':>12} {'same top-1':>11}")
        for label, model in models.items():
            same = sum(answer(model, ids) == a for ids, a in zip(questions, answers, strict=True))
            pairs = [(x, y) for ids, a, ref in zip(questions, answers, reference_tops, strict=True)
                     for x, y in zip(tops(model, ids, a), ref, strict=True)]
            agree = sum(x == y for x, y in pairs) / len(pairs)
            print(f"  {label:16} {statistics.median(rates[label]):>9.1f} {same:>6}/{len(records):<5} "
                  f"{agree:>10.0%}", flush=True)
    rate = read_rate()
    print(f"memory read, 2 threads: {rate:.1f} GB/s; the packaged table (178 MB, read for every token's logits) "
          f"alone takes ≥ {178 / rate:.1f} ms a token at that rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="speed",
                        choices=("speed", "engines", "first-token", "heldout", "output-layer"))
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ptune-steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return ptune_child(*args.child)
    if args.part == "engines":
        return engines(args.rounds, args.samples, args.tokens)
    if args.part == "heldout":
        return heldout(args.samples)
    if args.part == "output-layer":
        return output_layer(args.rounds, args.samples, args.tokens)
    if args.part == "first-token":
        return first_tokens(bench_home(), args.rounds)
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

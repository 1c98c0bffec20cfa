"""P-Tuning v2 (deep prefix tuning) of a frozen causal LM, the way ChatGLM2's ptuning scripts did it.

peft's `PrefixTuningConfig` learns `pre_seq_len` key/value vectors for every layer (a ChatGLM2 base
trains its own prefix encoder instead, as the original did); the base model stays frozen. The
options, the checkpoints and `train_results.json` follow the original scripts, and the evaluation
scores BLEU-4 and ROUGE-1/2/L on jieba tokens as they did.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from birdsdao.errors import BirdsError, InvalidInputError
from birdsdao.inputs import existing_folder, writable_folder
from birdsdao.language_model.ptune_data import Example, read_examples, split_examples

PREFIX_MARKER = "birds_prefix.json"
CHATGLM = "chatglm"  # the family of language_model.chatglm2's models
Progress = Callable[[int, int, float | None], None]  # (optimizer steps done, in all, last logged loss)


class PrefixMismatchError(BirdsError):
    """A prefix trained on another base model than the one it is loaded on."""


@dataclass
class PtuneConfig:
    data: Path
    output: Path
    base_model: str | None = None
    pre_seq_len: int = 128
    prefix_projection: bool = False
    lr: float = 2e-2
    max_source_length: int = 64
    max_target_length: int = 128
    batch_size: int = 1
    gradient_accumulation_steps: int = 16
    max_steps: int | None = None  # wins over epochs
    epochs: float = 3.0
    save_steps: int = 1000
    logging_steps: int = 10
    val_split: float = 0.1
    val_data: Path | None = None  # a separate validation file: then all of `data` trains
    max_eval_samples: int | None = None  # score only the first N validation records (as ChatGLM2's script)
    seed: int = 42
    quantization_bit: int | None = None
    device: str = "cpu"
    resume: bool = False
    eval_only: bool = False
    prefix: Path | None = None  # with eval_only: the prefix to score

    def validate(self) -> None:
        for name in ("pre_seq_len", "max_source_length", "max_target_length", "batch_size",
                     "gradient_accumulation_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInputError("--max-steps must be at least 1")
        if self.lr <= 0 or self.epochs <= 0:
            raise InvalidInputError("--lr and --epochs must be positive")
        if self.eval_only and self.prefix is None:
            raise InvalidInputError("--eval-only needs --prefix DIR")
        if self.prefix is not None:
            existing_folder(self.prefix, "a prefix folder (--prefix)", hint="give a folder written by `birds ptune`")
        writable_folder(self.output, "the output folder (--output)")  # before the model loads
        if self.max_eval_samples is not None and self.max_eval_samples < 1:
            raise InvalidInputError("--max-eval-samples must be at least 1")
        if self.quantization_bit not in (None, 4, 8):
            raise InvalidInputError("--quantization-bit must be 4 or 8")


@dataclass
class PtuneResult:
    output: str
    prefix: str
    train: dict[str, float] = field(default_factory=dict)  # train_results.json
    eval: dict[str, float] = field(default_factory=dict)  # eval_loss, bleu-4, rouge-1/2/l
    train_examples: int = 0
    val_examples: int = 0
    skipped_empty: int = 0
    predictions: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_ptune(config: PtuneConfig, models_dir: Path, *, progress: Progress | None = None,
              say: Callable[[str], None] | None = None) -> PtuneResult:
    """Train (or with `eval_only`, re-score) a prefix; everything lands in `config.output`."""
    import torch

    from birdsdao.language_model.models import load_model

    config.validate()
    examples, empty = read_examples(config.data)
    if config.val_data is not None:
        train_set = examples
        val_set, val_empty = read_examples(config.val_data)
        empty += val_empty
    else:
        train_set, val_set = split_examples(examples, config.val_split, config.seed)
    if config.max_eval_samples is not None:
        val_set = val_set[: config.max_eval_samples]
    torch.manual_seed(config.seed)
    loaded = load_model(config.base_model, models_dir, device=config.device, progress=say,
                        quantization_bit=config.quantization_bit)
    output = Path(config.output)
    result = PtuneResult(output=str(output), prefix=str(config.prefix or output), train_examples=len(train_set),
                         val_examples=len(val_set), skipped_empty=empty)
    if config.eval_only:
        model = load_prefix(loaded, Path(config.prefix))  # a prefix of another base fails before --output exists
        output.mkdir(parents=True, exist_ok=True)
    else:
        output.mkdir(parents=True, exist_ok=True)
        model = _new_prefix_model(loaded, config)
        result.train = _train(model, loaded, train_set, config, output, progress)
        save_prefix(model, loaded, output, config)
        _write_json(output / "train_results.json", result.train)
    if val_set:
        result.eval, predictions = evaluate(model, loaded, val_set, config)
        result.predictions = str(output / "generated_predictions.jsonl")
        with open(result.predictions, "w", encoding="utf-8") as handle:
            for row in predictions:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        _write_json(output / "eval_results.json", result.eval)
    return result


def _new_prefix_model(loaded, config: PtuneConfig):
    if loaded.family == CHATGLM:  # ChatGLM2 has its own prefix encoder, as the original scripts trained it
        from birdsdao.language_model.chatglm2.prefix_files import start_prefix

        return start_prefix(loaded.model, config.pre_seq_len, config.prefix_projection)
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    peft_config = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.pre_seq_len,
                                     prefix_projection=config.prefix_projection)
    return get_peft_model(loaded.model, peft_config)


def encode(loaded, example: Example, config: PtuneConfig) -> tuple[list[int], list[int]]:
    """Input ids and labels: the prompt's tokens are masked out of the loss (-100)."""
    from birdsdao.language_model.prompts import build_prompt

    tokenizer = loaded.tokenizer
    prompt, _ = build_prompt(tokenizer, loaded.family, example.question)
    source = prompt_ids(tokenizer, prompt, config.max_source_length)
    target = tokenizer(example.answer, add_special_tokens=False)["input_ids"][: config.max_target_length]
    target = target + [tokenizer.eos_token_id]
    return source + target, [-100] * len(source) + target


def prompt_ids(tokenizer, prompt: str, limit: int) -> list[int]:
    """At most `limit` prompt tokens, cut from the front after the tokenizer's own leading tokens (BOS;
    ChatGLM2's [gMASK] sop): the end holds the question and the answer cue, which the model must see as it
    will at inference. Of a grounded prompt, the first passage goes first."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if len(ids) <= limit:
        return ids
    lead = len(tokenizer("", add_special_tokens=True)["input_ids"])
    lead = lead if lead < limit else 0
    return ids[:lead] + ids[len(ids) - (limit - lead):]


def target_loss(model, batch: dict):
    """The mean cross-entropy over the target tokens, as `model(**batch).loss`, with the output layer applied
    only from the first target on: a 262k-word output layer over a long grounded prompt would otherwise cost
    most of the step (a 450-token prompt: 1.8x faster on a CPU) and its logits a gigabyte."""
    import torch

    labels = batch["labels"]
    width = labels.shape[1]
    first = int((labels != -100).int().argmax(dim=1).min())  # the earliest target over the batch
    start = max(first - 1, 0)  # the position whose logits predict that target
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=width - start).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, start + 1:].flatten(),
                                             ignore_index=-100)


def _batches(encoded: list[tuple[list[int], list[int]]], size: int, pad_id: int):
    import torch

    for start in range(0, len(encoded), size):
        chunk = encoded[start:start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (tokens, targets) in enumerate(chunk):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            labels[row, : len(targets)] = torch.tensor(targets)
            mask[row, : len(tokens)] = 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _train(model, loaded, train_set: list[Example], config: PtuneConfig, output: Path,
           progress: Progress | None) -> dict[str, float]:
    import random

    import torch
    from torch.utils.tensorboard import SummaryWriter

    encoded = [encode(loaded, example, config) for example in train_set]
    micro_per_epoch = math.ceil(len(encoded) / config.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / config.gradient_accumulation_steps)  # a short last one counts
    total = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr)
    # linear decay to zero, as transformers' Trainer (which the original scripts used) does by default
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    step = _resume(model, optimizer, scheduler, output) if config.resume else 0
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else loaded.tokenizer.eos_token_id
    device = next(model.parameters()).device
    writer = SummaryWriter(log_dir=str(output / "runs"))
    order = random.Random(config.seed)
    losses: list[float] = []
    logged: float | None = None
    started, samples = time.perf_counter(), 0
    model.train()
    while step < total:
        order.shuffle(encoded)
        micro = 0
        for batch in _batches(encoded, config.batch_size, pad):
            batch = {key: value.to(device) for key, value in batch.items()}
            loss = target_loss(model, batch) / config.gradient_accumulation_steps
            loss.backward()
            losses.append(float(loss.detach()) * config.gradient_accumulation_steps)
            samples += batch["input_ids"].shape[0]
            micro += 1
            if micro % config.gradient_accumulation_steps and micro != micro_per_epoch:
                continue
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % config.logging_steps == 0 or step == total:
                window = losses[-config.gradient_accumulation_steps * config.logging_steps:]
                logged = sum(window) / len(window)
                writer.add_scalar("train/loss", logged, step)
                writer.add_scalar("train/learning_rate", scheduler.get_last_lr()[0], step)
            if step % config.save_steps == 0 and step < total:
                _save_checkpoint(model, optimizer, scheduler, output / f"checkpoint-{step}", step)
            if progress:
                progress(step, total, logged)
            if step >= total:
                break
    writer.close()
    runtime = time.perf_counter() - started
    return {
        "epoch": round(step / steps_per_epoch, 2),
        "train_loss": round(sum(losses) / max(len(losses), 1), 4),
        "train_runtime": round(runtime, 4),
        "train_samples": len(train_set),
        "train_samples_per_second": round(samples / runtime, 3),
        "train_steps_per_second": round(step / runtime, 3),
    }


def _save_checkpoint(model, optimizer, scheduler, folder: Path, step: int) -> None:
    import torch

    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    _write_prefix_weights(model, partial)  # what inference loads
    trainable = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    torch.save({"trainable": trainable, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step}, partial / "trainer_state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _resume(model, optimizer, scheduler, output: Path) -> int:
    import torch

    checkpoints = sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        raise InvalidInputError(f"--resume: {output} holds no checkpoint-N folder")
    latest = checkpoints[-1]
    state = torch.load(latest / "trainer_state.pt", weights_only=False)
    missing = set(state["trainable"]) - {name for name, _ in model.named_parameters()}
    if missing:
        raise InvalidInputError(f"--resume: {latest} was saved with other prefix settings ({sorted(missing)[0]} …)")
    model.load_state_dict(state["trainable"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def _write_prefix_weights(model, folder: Path) -> None:
    """peft's files (with --prefix-projection: the projected prefix), or ChatGLM2's prefix encoder."""
    if getattr(model.config, "model_type", None) == CHATGLM and not hasattr(model, "peft_config"):
        from birdsdao.language_model.chatglm2.prefix_files import write_prefix

        write_prefix(model, folder)
    else:
        model.save_pretrained(folder)


def save_prefix(model, loaded, folder: Path, config: PtuneConfig) -> None:
    """The prefix (safetensors) and its peft config, plus which base it belongs to."""
    _write_prefix_weights(model, folder)
    marker = {"base_model": loaded.name, "base_fingerprint": loaded.fingerprint, "family": loaded.family,
              "pre_seq_len": config.pre_seq_len, "prefix_projection": config.prefix_projection}
    _write_json(folder / PREFIX_MARKER, marker)


def load_prefix(loaded, folder: Path):
    """`loaded`'s model with the prefix in `folder` applied; a prefix of another base is refused.

    On a ChatGLM2 base the model itself takes the prefix (so `loaded.model` changes), and a
    `checkpoint-N` of the original ptuning scripts (no birds marker) loads when its shapes fit.
    """
    folder = Path(folder)
    marker_path = folder / PREFIX_MARKER
    if not marker_path.is_file():
        if loaded.family == CHATGLM:  # a checkpoint-N of the original ptuning scripts: its shapes are checked
            from birdsdao.language_model.chatglm2.prefix_files import apply_prefix

            return apply_prefix(loaded.model, folder)
        raise InvalidInputError(f"{folder}: not a birds prefix (no {PREFIX_MARKER})",
                                hint="a prefix of the original ChatGLM2 ptuning loads on a ChatGLM2-6B base")
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    if marker.get("base_fingerprint") != loaded.fingerprint:
        raise PrefixMismatchError(
            f"{folder} was trained on {marker.get('base_model')} (fingerprint {marker.get('base_fingerprint')}), "
            f"not on {loaded.name} ({loaded.fingerprint})",
            hint=f"load it with --base-model {marker.get('base_model')}",
        )
    if loaded.family == CHATGLM:
        from birdsdao.language_model.chatglm2.prefix_files import apply_prefix

        return apply_prefix(loaded.model, folder)
    from peft import PeftModel

    model = PeftModel.from_pretrained(loaded.model, str(folder))
    model.eval()
    return model


def evaluate(model, loaded, val_set: list[Example], config: PtuneConfig) -> tuple[dict[str, float], list[dict]]:
    """eval_loss, then greedy answers scored with BLEU-4 and ROUGE-1/2/L on jieba tokens (×100)."""
    import torch

    from birdsdao.language_model.generate import generate_ids
    from birdsdao.language_model.prompts import build_prompt

    model.eval()
    tokenizer = loaded.tokenizer
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses, rows = [], []
    with torch.inference_mode():
        for batch in _batches([encode(loaded, example, config) for example in val_set], 1, pad):
            losses.append(float(target_loss(model, {k: v.to(device) for k, v in batch.items()})))
        for example in val_set:
            prompt, stops = build_prompt(tokenizer, loaded.family, example.question)
            ids = prompt_ids(tokenizer, prompt, config.max_source_length)
            input_ids = torch.tensor([ids], device=device)
            generated = generate_ids(model, input_ids, torch.ones_like(input_ids), do_sample=False,
                                     max_new_tokens=config.max_target_length, repetition_penalty=1.2,
                                     pad_token_id=pad)
            text = tokenizer.decode(generated[0][len(ids):], skip_special_tokens=True)
            for stop in stops:
                text = text.split(stop)[0]
            rows.append({"prompt": example.question, "reference": example.answer, "prediction": text.strip()})
    scores = text_scores([row["prediction"] for row in rows], [row["reference"] for row in rows])
    return {"eval_loss": round(sum(losses) / len(losses), 4), **scores, "eval_samples": len(val_set)}, rows


def text_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean BLEU-4 (smoothed) and ROUGE-1/2/L F1 over jieba tokens, in percent, as ChatGLM2's ptuning reports."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(60)
    totals = {"bleu-4": 0.0, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    rouge = Rouge()
    for prediction, reference in zip(predictions, references, strict=True):
        hypothesis, truth = list(jieba.cut(prediction)), list(jieba.cut(reference))
        if " ".join(hypothesis).strip() and " ".join(truth).strip():
            result = rouge.get_scores(" ".join(hypothesis), " ".join(truth))[0]
            for key in ("rouge-1", "rouge-2", "rouge-l"):
                totals[key] += result[key]["f"] * 100
        totals["bleu-4"] += sentence_bleu([truth], hypothesis, smoothing_function=SmoothingFunction().method3) * 100
    return {key: round(value / max(len(predictions), 1), 4) for key, value in totals.items()}


def _write_json(path: Path, data: object) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)

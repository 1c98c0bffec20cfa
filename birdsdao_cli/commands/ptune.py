"""`birds ptune`: P-Tuning v2 of the language model on Alpaca-style bird questions and answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.options import BaseModelOpt, JsonOpt, QuantizationOpt


def ptune(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Alpaca records {instruction, input, output}: a JSON list or JSONL.")],
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the prefix, checkpoints and "
                                             "results.")] = Path("ptune-output"),
    base_model: BaseModelOpt = None,
    pre_seq_len: Annotated[int, typer.Option("--pre-seq-len", min=1, help="Prefix length (virtual tokens).")] = 128,
    prefix_projection: Annotated[bool, typer.Option("--prefix-projection", help="Learn the prefix through an "
                                                    "MLP.")] = False,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 2e-2,
    max_source_length: Annotated[int, typer.Option("--max-source-length", min=1)] = 64,
    max_target_length: Annotated[int, typer.Option("--max-target-length", min=1)] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1,
    accumulation: Annotated[int, typer.Option("--gradient-accumulation-steps", min=1)] = 16,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimizer steps (wins over "
                                                  "--epochs).")] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Passes over the training split.")] = 3.0,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1, help="Write checkpoint-N every N steps.")] = 1000,
    logging_steps: Annotated[int, typer.Option("--logging-steps", min=1)] = 10,
    val_split: Annotated[float, typer.Option("--val-split", help="Share held out for evaluation.")] = 0.1,
    val_data: Annotated[Path | None, typer.Option("--val-data", help="Validation records in their own file "
                                                  "(then all of DATA trains and --val-split is unused).")] = None,
    max_eval_samples: Annotated[int | None, typer.Option("--max-eval-samples", min=1, help="Score only the first "
                                                         "N validation records (generation is slow on a CPU).")]
    = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    quantization_bit: QuantizationOpt = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 …")] = "cpu",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint-N in --output.")]
    = False,
    eval_only: Annotated[bool, typer.Option("--eval-only", help="Only score --prefix on the validation split.")]
    = False,
    prefix: Annotated[Path | None, typer.Option("--prefix", help="An existing prefix folder, for --eval-only.")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Tune a prefix for the language model (P-Tuning v2, as the original ChatGLM2-6B project did).

    The base stays frozen; the prefix, checkpoint-N/ folders, train_results.json, eval_results.json
    (eval_loss, BLEU-4, ROUGE-1/2/L on jieba tokens), generated_predictions.jsonl and TensorBoard logs
    land in --output.

    Examples:

      birds ptune data/ptune/train.json --val-data data/ptune/dev.json --max-steps 300 -o prefixes/birds

      birds ptune data/ptune/train.json --val-data data/ptune/dev.json --eval-only --prefix prefixes/birds
    """
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    config = PtuneConfig(
        data=data, output=output_dir, base_model=base_model, pre_seq_len=pre_seq_len,
        prefix_projection=prefix_projection, lr=lr, max_source_length=max_source_length,
        max_target_length=max_target_length, batch_size=batch_size, gradient_accumulation_steps=accumulation,
        max_steps=max_steps, epochs=epochs, save_steps=save_steps, logging_steps=logging_steps,
        val_split=val_split, val_data=val_data, max_eval_samples=max_eval_samples, seed=seed,
        quantization_bit=quantization_bit, device=device, resume=resume,
        eval_only=eval_only, prefix=prefix,
    )
    models_dir = ctx.obj["settings"].models_dir
    with output.progress_bar("P-Tuning (optimizer steps)") as bar:
        result = run_ptune(config, models_dir, progress=lambda step, total, loss: bar(step, total),
                           say=lambda message: output.console.print(message))
    if json_out:
        output.print_json(result.to_dict())
        return
    table = Table("", "value", title=f"Prefix in {result.prefix}")
    table.add_row("records", f"{result.train_examples} train, {result.val_examples} validation"
                  + (f", {result.skipped_empty} empty skipped" if result.skipped_empty else ""))
    for key in ("train_loss", "train_runtime", "train_samples_per_second", "epoch"):
        if key in result.train:
            table.add_row(key, str(result.train[key]))
    for key, value in result.eval.items():
        table.add_row(key, str(value))
    output.stdout.print(table)

"""`birds prune`, `birds finetune` and `birds export`: slim a sparse-trained detector and ship it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.commands.train import BatchOpt, ImgszOpt, WorkersOpt, parse_settings
from birdsdao_cli.options import DeviceOpt, JsonOpt

EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Fine-tuning epochs.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any other ultralytics training argument, "
                                                  "KEY=VALUE (repeatable).")]


class ExportFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


def prune(
    ctx: typer.Context,
    weights: Annotated[Path, typer.Argument(help="A YOLOv8 checkpoint, best after `birds train --sparse`.")],
    keep: Annotated[float, typer.Option("--keep", help="Share of the prunable channels to keep, in (0, 1].")] = 0.8,
    min_channels: Annotated[int, typer.Option("--min-channels", min=1, help="Never fewer channels in a layer.")] = 8,
    round_to: Annotated[int, typer.Option("--round-to", help="Round each layer's width up to a multiple: 1, 8 "
                                          "or 16 (onnxruntime's CPU and GPU kernels like multiples of 8; "
                                          "docs/pruning.md).")] = 8,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.",
                                             show_default="WEIGHTS folder/pruned-keep<KEEP>")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also export ONNX and check it against PyTorch.")] = False,
    imgsz: ImgszOpt = 640,
    finetune_data: Annotated[Path | None, typer.Option("--finetune", help="data.yaml: fine-tune the pruned "
                                                       "network on it right away.")] = None,
    epochs: EpochsOpt = 30,
    batch: BatchOpt = 16,
    device: DeviceOpt = None,
    workers: WorkersOpt = 2,
    json_out: JsonOpt = False,
) -> None:
    """Remove the channels whose BatchNorm |γ| fall under one global threshold (network slimming).

    Writes pruned.pt (loads with YOLO(path): predicts, validates, exports, trains), prune_report.json
    and channels.png (channels per layer, before and after) into the output folder.

    Examples:

      birds prune runs/train/exp/weights/last.pt --keep 0.8

      birds prune last.pt --keep 0.5 --round-to 8 --onnx --finetune data/birds161/data.yaml --epochs 30
    """
    from birdsdao.pruning.finetune import prune_then_finetune
    from birdsdao.pruning.prune import PruneConfig
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    config = PruneConfig(weights=weights, keep=keep, min_channels=min_channels, round_to=round_to, out=out,
                         onnx=onnx, imgsz=imgsz)
    tune = None if finetune_data is None else _finetune_config(
        ctx, config.out_dir() / "pruned.pt", finetune_data, epochs, imgsz, batch, device, workers, "exp", 0, [])
    with output_on_stderr():
        report, run = prune_then_finetune(config, tune)
    result: dict[str, object] = {"prune": report.to_dict()}
    if run is not None:
        result["finetune"] = run.to_dict()
    if json_out:
        output.print_json(result)
        return
    _render_prune(report)
    if run is not None:
        output.stdout.print(f"Fine-tuned: {run.weights} ({run.params:,} parameters, as pruned)", soft_wrap=True)


def finetune(
    ctx: typer.Context,
    weights: Annotated[Path, typer.Argument(help="Pruned weights from `birds prune`.")],
    data: Annotated[Path, typer.Option("--data", help="data.yaml with the classes the detector predicts.")],
    epochs: EpochsOpt = 30,
    imgsz: ImgszOpt = 640,
    batch: BatchOpt = 16,
    device: DeviceOpt = None,
    workers: WorkersOpt = 2,
    name: Annotated[str, typer.Option("--name", help="Run name; an existing one gets a number.")] = "exp",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    settings: SetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a pruned detector as it is, to win back the accuracy pruning cost.

    Ultralytics would rebuild the network from its yaml (unpruned) and copy what fits; this keeps the
    pruned module, checks the parameter count afterwards, and saves the final epoch in full precision
    (weights/finetuned.pt) beside ultralytics' best.pt and last.pt.

    Example:  birds finetune runs/train/exp/weights/pruned-keep0.8/pruned.pt --data data/birds161/data.yaml
    """
    run = _finetune(ctx, weights, data, epochs, imgsz, batch, device, workers, name, seed, settings or [])
    if json_out:
        output.print_json(run.to_dict())
        return
    output.stdout.print(f"Run folder: {run.run_dir}", soft_wrap=True)
    score = run.metrics.get("metrics/mAP50-95(B)", 0)
    output.stdout.print(f"{run.params:,} parameters, as pruned; mAP50-95 {score:.4f}")
    output.stdout.print(f"Full-precision weights: {run.weights}", soft_wrap=True)


def export(
    weights: Annotated[Path, typer.Argument(help="Detector weights (.pt), pruned or not.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="Export format.")] = ExportFormat.onnx,
    imgsz: ImgszOpt = 640,
    json_out: JsonOpt = False,
) -> None:
    """Export a detector; ONNX is run in onnxruntime and compared with PyTorch on the same input.

    Example:  birds export pruned.pt --format onnx --imgsz 640
    """
    from birdsdao.pruning.export import export_detector
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    with output_on_stderr():
        result = export_detector(weights, format.value, imgsz)
    if json_out:
        output.print_json(result)
        return
    output.stdout.print(f"Exported: {result['path']}", soft_wrap=True)
    if "max_abs_diff" in result:
        output.stdout.print(f"onnxruntime vs PyTorch, largest difference: {result['max_abs_diff']:.3g} "
                            f"(outputs up to {result['max_abs_output']:.3g})")


def _finetune(ctx, weights, data, epochs, imgsz, batch, device, workers, name, seed, settings):
    from birdsdao.pruning.finetune import finetune_pruned
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    config = _finetune_config(ctx, weights, data, epochs, imgsz, batch, device, workers, name, seed, settings)
    with output_on_stderr():
        return finetune_pruned(config)


def _finetune_config(ctx, weights, data, epochs, imgsz, batch, device, workers, name, seed, settings):
    from birdsdao.pruning.finetune import FinetuneConfig

    return FinetuneConfig(weights=weights, data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device,
                          workers=workers, project=ctx.obj["settings"].runs_dir / "finetune", name=name, seed=seed,
                          overrides=parse_settings(settings))


def _render_prune(report) -> None:
    changed = [layer for layer in report.layers if layer["after"] != layer["before"]]
    table = Table("layer", "channels before", "after",
                  title=f"{len(changed)} of {len(report.layers)} BatchNorm layers pruned")
    for layer in changed:
        table.add_row(str(layer["name"]).removesuffix(".bn"), str(layer["before"]), str(layer["after"]))
    output.stdout.print(table)
    totals = Table("", "before", "after", "ratio")
    totals.add_row("parameters", f"{report.params_before:,}", f"{report.params_after:,}",
                   f"{report.params_after / report.params_before:.2f}")
    totals.add_row("GFLOPs", f"{report.gflops_before:.2f}", f"{report.gflops_after:.2f}",
                   f"{report.gflops_after / max(report.gflops_before, 1e-9):.2f}")
    output.stdout.print(totals)
    output.stdout.print(
        f"Threshold |γ| {report.threshold:.4g}: removed {report.removed_channels:,} of {report.prunable_channels:,} "
        f"prunable channels ({report.removed_share_of_prunable:.1%}; {report.removed_share_of_all_bn:.1%} of all "
        f"BatchNorm channels) for --keep {report.keep:g}"
    )
    if report.onnx:
        output.stdout.print(f"ONNX: {report.onnx['path']}, largest difference from PyTorch "
                            f"{report.onnx['max_abs_diff']:.3g}", soft_wrap=True)
    for warning in report.warnings:
        output.console.print(f"[yellow]Note:[/] {warning}")
    output.stdout.print(f"Pruned weights: {report.weights}", soft_wrap=True)

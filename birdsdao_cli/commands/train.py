"""`birds train` and `birds val`: YOLO detector training with network-slimming sparsity, and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birdsdao_cli import output
from birdsdao_cli.options import DeviceOpt, JsonOpt

WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="Dataloader worker processes.")]
ImgszOpt = Annotated[int, typer.Option("--imgsz", min=32, help="Training and validation image size (pixels).")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Images per batch.")]


def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="data.yaml of a detection dataset (from `birds prepare-data`).")],
    model: Annotated[str, typer.Option("--model", help="yolov8n.yaml (…s/m/l/x) to train from scratch, or a "
                                       "local .pt to start from; nothing is downloaded.")] = "yolov8n.yaml",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 100,
    imgsz: ImgszOpt = 640,
    batch: BatchOpt = 16,
    device: DeviceOpt = None,
    workers: WorkersOpt = 2,
    project: Annotated[Path | None, typer.Option("--project", help="Folder of runs.",
                                                 show_default="BIRDS_HOME/runs/train")] = None,
    name: Annotated[str, typer.Option("--name", help="Run name; an existing one gets a number.")] = "exp",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="SGD, Adam, AdamW, … (default: SGD with "
                                                  "--sparse, as the slimming paper; otherwise auto).")] = None,
    sparse: Annotated[bool, typer.Option("--sparse", help="Add L1 on every BatchNorm scale (network slimming).")]
    = False,
    l1: Annotated[float, typer.Option("--l1", min=0.0, help="λ of the L1 penalty.")] = 1e-2,
    l1_decay: Annotated[float, typer.Option("--l1-decay", min=0.0, max=1.0,
                                            help="λ falls as λ·(1 − decay·epoch/epochs).")] = 0.9,
    settings: Annotated[list[str] | None, typer.Option("--set", help="Any other ultralytics training argument, "
                                                       "KEY=VALUE (repeatable): --set lr0=0.02")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a YOLO detector; with --sparse, shrink unimportant channels for `birds prune`.

    Every epoch logs the BatchNorm |γ| histogram, the share of |γ| near zero and the λ in force to
    TensorBoard in the run folder; the run ends with bn_stats.json, bn_gamma.png (|γ| at the first
    and last epoch) and a preview of what `birds prune --keep` would remove.

    Examples:

      birds train data/birds161/data.yaml --epochs 100 --sparse

      birds train data/birds161/data.yaml --model runs/train/exp/weights/best.pt --sparse --l1 3e-3 --device 0
    """
    from birdsdao.training.train import TrainConfig, train_detector
    from birdsdao.training.ultralytics_adapter import output_on_stderr

    config = TrainConfig(
        data=data, model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
        project=project or ctx.obj["settings"].runs_dir / "train", name=name, seed=seed, optimizer=optimizer,
        sparse=sparse, l1=l1, l1_decay=l1_decay, overrides=parse_settings(settings or []),
    )
    with output_on_stderr():
        run = train_detector(config)
    if json_out:
        output.print_json(run.to_dict())
    else:
        _render_run(run)


def val(
    weights: Annotated[Path, typer.Argument(help="Detector weights (.pt).")],
    data: Annotated[Path, typer.Option("--data", help="data.yaml to validate on.")],
    split: Annotated[str, typer.Option("--split", help="val or test.")] = "val",
    imgsz: ImgszOpt = 640,
    batch: BatchOpt = 16,
    device: DeviceOpt = None,
    workers: WorkersOpt = 2,
    json_out: JsonOpt = False,
) -> None:
    """Measure a detector: mAP50, mAP50-95, precision, recall, and speed per image.

    Example:  birds val runs/train/exp/weights/last.pt --data data/birds161/data.yaml
    """
    from birdsdao.training.ultralytics_adapter import output_on_stderr
    from birdsdao.training.validate import validate_detector

    with output_on_stderr():
        result = validate_detector(weights, data, imgsz=imgsz, batch=batch, device=device, split=split,
                                   workers=workers)
    if json_out:
        output.print_json(result.to_dict())
        return
    table = Table("mAP50", "mAP50-95", "precision", "recall", "inference ms/img")
    table.add_row(*(f"{v:.4f}" for v in (result.map50, result.map50_95, result.precision, result.recall)),
                  f"{result.speed_ms.get('inference', 0):.1f}")
    output.stdout.print(table)


def parse_settings(items: list[str]) -> dict[str, object]:
    """`KEY=VALUE` pairs; values are read as YAML scalars, so 0.02 is a number and false a boolean."""
    import yaml

    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


def _render_run(run) -> None:
    output.stdout.print(f"Run folder: {run.run_dir}  (TensorBoard: tensorboard --logdir {run.tensorboard})",
                        soft_wrap=True)
    metrics = run.metrics
    output.stdout.print(
        f"best.pt: mAP50 {metrics.get('metrics/mAP50(B)', 0):.4f}, mAP50-95 {metrics.get('metrics/mAP50-95(B)', 0):.4f}"
    )
    table = Table("checkpoint", "mean |γ|", "|γ| < 1e-2", "|γ| < 1e-3", title="BatchNorm scales")
    for name, stats in run.sparsity.items():
        table.add_row(f"{name}.pt", f"{stats['mean_abs_gamma']:.4f}", f"{stats['share_below_0.01']:.1%}",
                      f"{stats['share_below_0.001']:.1%}")
    output.stdout.print(table)
    preview = Table("--keep", "threshold |γ|", "channels removed", "of prunable", "of all BN",
                    title=f"What `birds prune {Path(run.prune).name}` would remove")
    for row in run.prune_preview:
        preview.add_row(f"{row['keep']:.1f}", f"{row['threshold']:.4g}", f"{row['removed_channels']:,}",
                        f"{row['removed_share_of_prunable']:.1%}", f"{row['removed_share_of_all']:.1%}")
    output.stdout.print(preview)
    advice = "the final epoch carries the whole sparsity schedule" if run.sparse else "the final epoch"
    output.stdout.print(f"Prune this checkpoint: {run.prune} ({advice}; best.pt is chosen by mAP)", soft_wrap=True)

"""`finetune_pruned`: train a pruned detector as it is, and prove it stayed pruned."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from birdsdao.errors import BirdsError, InvalidInputError
from birdsdao.training.train import RunSettings


class PruningLostError(BirdsError):
    """Fine-tuning returned a network of another size than the pruned one."""


@dataclass(kw_only=True)
class FinetuneConfig(RunSettings):
    weights: Path
    epochs: int = 30
    project: Path = Path("runs/finetune")


@dataclass
class FinetuneRun:
    run_dir: str
    weights: str  # final epoch, full precision
    best: str
    last: str
    params: int
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def prune_then_finetune(prune, finetune: FinetuneConfig | None):
    """`birds prune --finetune`: (PruneReport, FinetuneRun or None). The fine-tuning's dataset, device and
    settings are checked before anything is pruned, so a wrong data.yaml costs nothing and leaves nothing."""
    from birdsdao.pruning.prune import prune_detector
    from birdsdao.training.checks import check_run

    if finetune is not None:
        check_run(finetune)
    report = prune_detector(prune)
    if finetune is None:
        return report, None
    return report, finetune_pruned(replace(finetune, weights=Path(report.weights)))


def finetune_pruned(config: FinetuneConfig) -> FinetuneRun:
    from birdsdao.pruning.prune import load_detector
    from birdsdao.training.checks import check_run
    from birdsdao.training.ultralytics_adapter import parameter_count, pruned_trainer_class, save_checkpoint

    data = check_run(config)
    yolo = load_detector(config.weights)
    if int(data["nc"]) != len(yolo.names):
        raise InvalidInputError(
            f"{config.data} has {data['nc']} classes and {config.weights} predicts {len(yolo.names)}: "
            "a pruned detector is fine-tuned on the classes it was trained for"
        )
    params = parameter_count(yolo.model)
    yolo.train(trainer=pruned_trainer_class(), **config.train_arguments())
    trainer = yolo.trainer
    final = trainer.ema.ema if trainer.ema else trainer.model
    trained = parameter_count(final)
    if trained != params:
        raise PruningLostError(
            f"fine-tuning returned {trained:,} parameters instead of the pruned {params:,}: the network was rebuilt",
            hint="report this with your ultralytics version; the pruned weights are unchanged",
        )
    run_dir = Path(trainer.save_dir)
    weights = run_dir / "weights" / "finetuned.pt"
    # ultralytics' best.pt and last.pt hold half precision; keep the final epoch in full precision too
    save_checkpoint(weights, final, vars(trainer.args))
    return FinetuneRun(
        run_dir=str(run_dir), weights=str(weights), best=str(trainer.best), last=str(trainer.last), params=trained,
        metrics={key: round(float(value), 5) for key, value in (trainer.metrics or {}).items()},
    )

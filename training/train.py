"""`train_detector`: ultralytics YOLO training, optionally with network-slimming sparsity."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from birdsdao.errors import InvalidInputError

PREVIEW_KEEPS = (0.5, 0.7, 0.8)


@dataclass(kw_only=True)
class RunSettings:
    """What every ultralytics training run here takes (training and fine-tuning)."""

    data: Path
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    workers: int = 2
    project: Path = Path("runs/train")
    name: str = "exp"
    seed: int = 0
    overrides: dict[str, object] = field(default_factory=dict)  # any other ultralytics training argument

    def validate(self) -> None:
        for name, value, low in (("epochs", self.epochs, 1), ("imgsz", self.imgsz, 32), ("batch", self.batch, 1)):
            if value < low:
                raise InvalidInputError(f"--{name} must be at least {low}, not {value}")

    def train_arguments(self) -> dict[str, object]:
        arguments = {
            "data": str(self.data), "epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch,
            "device": self.device, "workers": self.workers, "project": str(Path(self.project).absolute()),
            "name": self.name, "seed": self.seed,
        }
        return arguments | dict(self.overrides)


@dataclass(kw_only=True)
class TrainConfig(RunSettings):
    model: str = "yolov8n.yaml"
    optimizer: str | None = None  # SGD for sparse runs (as the slimming paper), ultralytics' "auto" otherwise
    sparse: bool = False
    l1: float = 1e-2
    l1_decay: float = 0.9

    def validate(self) -> None:
        super().validate()
        if self.l1 < 0 or not 0 <= self.l1_decay <= 1:
            raise InvalidInputError("--l1 must be ≥ 0 and --l1-decay within [0, 1]")

    def train_arguments(self) -> dict[str, object]:
        optimizer = self.optimizer or ("SGD" if self.sparse else "auto")
        return {"optimizer": optimizer} | super().train_arguments()


@dataclass
class TrainRun:
    run_dir: str
    best: str
    last: str
    prune: str  # the checkpoint to hand to `birds prune`
    epochs: int
    sparse: bool
    l1: float
    metrics: dict[str, float]
    sparsity: dict[str, dict[str, float]]  # summary of |γ| in best.pt and last.pt
    bn_stats: str
    gamma_plot: str
    tensorboard: str
    prune_preview: list[dict[str, object]]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def train_detector(config: TrainConfig) -> TrainRun:
    """Check everything, train, then summarise which checkpoint is how sparse and what pruning would remove."""
    from birdsdao.training.checks import check_run, load_training_model
    from birdsdao.training.ultralytics_adapter import trainer_class

    check_run(config)
    yolo = load_training_model(config.model)
    trainer = trainer_class(config.l1 if config.sparse else 0.0, config.l1_decay)
    yolo.train(trainer=trainer, **config.train_arguments())
    return _summarise(yolo.trainer, config)


def _summarise(trainer, config: TrainConfig) -> TrainRun:
    from birdsdao.training.channel_plan import plan_channels
    from birdsdao.training.sparsity import abs_gammas, summary

    run_dir = Path(trainer.save_dir)
    best, last = Path(trainer.best), Path(trainer.last)
    models = {name: _load_model(path) for name, path in (("best", best), ("last", last)) if path.exists()}
    sparsity = {name: summary(abs_gammas(model)) for name, model in models.items()}
    final = models.get("last") or models.get("best")
    preview = [plan_channels(final, keep).to_dict() for keep in PREVIEW_KEEPS] if final is not None else []
    for row in preview:
        row.pop("kept_per_layer")  # the per-layer detail belongs to `birds prune`'s report
    metrics = {key: round(float(value), 5) for key, value in (trainer.metrics or {}).items()}
    run = TrainRun(
        run_dir=str(run_dir), best=str(best), last=str(last),
        # best.pt is picked by mAP and is often the least sparse; the final epoch carries the whole schedule.
        prune=str(last if last.exists() else best),
        epochs=trainer.epoch + 1, sparse=config.sparse, l1=config.l1 if config.sparse else 0.0,
        metrics=metrics, sparsity=sparsity,
        bn_stats=str(run_dir / "bn_stats.json"), gamma_plot=str(run_dir / "bn_gamma.png"),
        tensorboard=str(run_dir), prune_preview=preview,
    )
    (run_dir / "train_summary.json").write_text(json.dumps(run.to_dict(), indent=2) + "\n", encoding="utf-8")
    return run


def _load_model(path: Path):
    from birdsdao.training.ultralytics_adapter import load_yolo

    return load_yolo(path, task=None, what="a trained checkpoint").model

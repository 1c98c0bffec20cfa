"""Every ultralytics-specific trick of birdsdao's training lives here, behind a version check.

Extension points used, and nothing else: a `DetectionTrainer` subclass passed with `trainer=`
(overriding `optimizer_step`, because 8.4 fires no callback between backward and the optimizer
step) and callbacks registered on that trainer. Settings are class attributes, so the class that
ultralytics cloudpickles for multi-GPU DDP carries them to every rank.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import torch

from birdsdao.errors import InvalidInputError, UnsupportedUltralyticsVersion
from birdsdao.inputs import WEIGHTS_HINT, weights_file
from birdsdao.training.sparsity import abs_gammas, add_l1_subgradient, bn_statistics, l1_lambda, summary

SUPPORTED_SERIES = ((8, 4),)  # the trainer loop whose step order was read and tested


def check_ultralytics() -> str:
    import ultralytics

    version = ultralytics.__version__
    series = tuple(int(part) for part in version.split(".")[:2])
    if series not in SUPPORTED_SERIES:
        wanted = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_SERIES)
        raise UnsupportedUltralyticsVersion(
            f"ultralytics {version} is installed; birdsdao's trainer was checked against {wanted}",
            hint='pip install "ultralytics>=8.4,<8.5"',
        )
    return version


def load_yolo(weights: str | Path, *, task: str | None = "detect", what: str = "detector weights"):
    """The one place birdsdao opens weights with ultralytics: `YOLO(path)`, or one line naming the file.

    The file is sniffed first (missing, a folder, empty, a photo, not a torch or ONNX file), then any
    exception of ultralytics' loader (several types, multi-line text with a list of export formats)
    becomes an `InvalidInputError`; `--debug` still shows the original traceback through its cause.
    """
    from ultralytics import YOLO

    path = weights_file(weights, what)
    try:
        with output_on_stderr():
            yolo = YOLO(str(path), task=task) if task else YOLO(str(path))
    except Exception as exc:
        raise InvalidInputError(f"{path}: not an ultralytics checkpoint, so not {what}", hint=WEIGHTS_HINT) from exc
    if path.suffix.lower() in (".pt", ".pth") and not isinstance(yolo.model, torch.nn.Module):
        raise InvalidInputError(f"{path}: holds no ultralytics model, so not {what}", hint=WEIGHTS_HINT)
    return yolo


def yolo_from_yaml(model_yaml: str):
    """A new detector built from a model yaml (a built-in name such as yolov8n.yaml, or a file)."""
    from ultralytics import YOLO

    return YOLO(model_yaml, task="detect")


def resolve_dataset(data_yaml: Path) -> dict:
    """ultralytics' own reading of a detection data.yaml (paths resolved, names checked); never downloads."""
    from ultralytics.data.utils import check_det_dataset

    return check_det_dataset(str(data_yaml), autodownload=False)


def select_training_device(device: str) -> None:
    """Raises if ultralytics cannot train on `device` here (a CUDA id this machine lacks, an unknown word)."""
    from ultralytics.utils.torch_utils import select_device

    select_device(device, verbose=False)


def training_argument_names() -> set[str]:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return set(DEFAULT_CFG_DICT)


def parameter_count(model: torch.nn.Module) -> int:
    from ultralytics.utils.torch_utils import get_num_params

    return get_num_params(model)


def gflops(model: torch.nn.Module, imgsz: int) -> float:
    from ultralytics.utils.torch_utils import get_flops

    return get_flops(model, imgsz)


def save_checkpoint(path: Path, model: torch.nn.Module, train_args: dict, **record: object) -> None:
    """The one way birdsdao writes a detector checkpoint: what `YOLO(path)` loads as it is (the pickled module in
    full precision, since a pruned network no longer matches its yaml), self-describing (date, ultralytics
    version, training arguments, and `record`, e.g. the pruning history), and never half-written."""
    import os
    from datetime import UTC, datetime

    import ultralytics

    checkpoint = {"date": datetime.now(UTC).isoformat(), "version": ultralytics.__version__, "model": model.float(),
                  "ema": None, "train_args": train_args, **record}
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


@contextmanager
def output_on_stderr() -> Iterator[None]:
    """ultralytics logs and draws progress bars on stdout; the CLI keeps stdout for its results."""
    from ultralytics.utils import LOGGER

    moved = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        with redirect_stdout(sys.stderr):  # progress bars look up sys.stdout when they are created
            yield
    finally:
        for handler in moved:
            handler.setStream(sys.stdout)


def trainer_class(l1: float = 0.0, l1_decay: float = 0.9) -> type:
    """A `DetectionTrainer` subclass with sparsity settings baked in as class attributes."""
    check_ultralytics()
    from ultralytics.models.yolo.detect import DetectionTrainer

    class BirdsDetectionTrainer(DetectionTrainer):
        """Logs BatchNorm-scale statistics every epoch; with l1 > 0, adds network slimming's L1 penalty."""

        l1_base = l1
        l1_decay_share = l1_decay

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.l1_steps = 0  # optimizer steps that carried the penalty
            for event, callback in (("on_fit_epoch_end", log_epoch), ("on_train_end", write_final_statistics)):
                if callback not in self.callbacks[event]:  # DDP ranks receive the callbacks already registered
                    self.add_callback(event, callback)

        def l1_in_force(self) -> float:
            return l1_lambda(self.epoch, self.epochs, self.l1_base, self.l1_decay_share) if self.l1_base else 0.0

        def optimizer_step(self):
            strength = self.l1_in_force()
            if strength:
                # Gradients are still multiplied by the AMP loss scale here (super() unscales them), so the
                # penalty must be too, or AMP would divide λ by 65536. A disabled scaler's scale is 1.
                add_l1_subgradient(self.model, strength * self.scaler.get_scale())
                self.l1_steps += 1
            super().optimizer_step()

    BirdsDetectionTrainer.__qualname__ = BirdsDetectionTrainer.__name__
    return BirdsDetectionTrainer


def _saved_model(trainer) -> torch.nn.Module:
    """The network the checkpoints hold: the EMA when there is one."""
    from ultralytics.utils.torch_utils import unwrap_model

    return trainer.ema.ema if getattr(trainer, "ema", None) else unwrap_model(trainer.model)


def _writer(trainer):
    writer = getattr(trainer, "_birds_writer", None)
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter

        writer = trainer._birds_writer = SummaryWriter(log_dir=str(trainer.save_dir))
    return writer


def log_epoch(trainer) -> None:
    """TensorBoard, each epoch: |γ| histogram, shares near zero, λ in force, and ultralytics' scalars."""
    from ultralytics.utils import RANK

    if RANK not in {-1, 0}:
        return
    epoch = trainer.epoch
    writer = _writer(trainer)
    if epoch >= trainer.epochs:  # final_eval re-fires this at step `epochs` with best.pt's metrics
        for key, value in (trainer.metrics or {}).items():
            writer.add_scalar(key, float(value), epoch)
        writer.flush()
        return
    gammas = abs_gammas(_saved_model(trainer))
    if getattr(trainer, "_birds_first_gammas", None) is None:
        trainer._birds_first_gammas = gammas
    trainer._birds_last_gammas = gammas
    writer.add_histogram("sparsity/abs_gamma", gammas, epoch)
    stats = summary(gammas)
    writer.add_scalar("sparsity/mean_abs_gamma", stats["mean_abs_gamma"], epoch)
    for key in ("share_below_0.01", "share_below_0.001"):
        writer.add_scalar(f"sparsity/{key}", stats[key], epoch)
    in_force = trainer.l1_in_force() if hasattr(trainer, "l1_in_force") else 0.0
    writer.add_scalar("sparsity/l1_lambda", in_force, epoch)
    scalars = {}
    if trainer.tloss is not None:
        scalars.update(trainer.label_loss_items(trainer.tloss, prefix="train"))
    scalars.update(trainer.metrics or {})
    scalars.update(trainer.lr or {})
    for key, value in scalars.items():
        writer.add_scalar(key, float(value), epoch)
    writer.flush()


def write_final_statistics(trainer) -> None:
    """bn_stats.json and the |γ| distribution plot (first vs last epoch) in the run folder."""
    from birdsdao.training.plots import plot_gamma_distribution

    save_dir = Path(trainer.save_dir)
    stats = bn_statistics(_saved_model(trainer))
    stats["l1"] = {
        "base": getattr(trainer, "l1_base", 0.0),
        "decay": getattr(trainer, "l1_decay_share", 0.0),
        "final": trainer.l1_in_force() if hasattr(trainer, "l1_in_force") else 0.0,
        "optimizer_steps_with_penalty": getattr(trainer, "l1_steps", 0),
    }
    stats["epochs"] = trainer.epoch + 1
    (save_dir / "bn_stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    first = getattr(trainer, "_birds_first_gammas", None)
    last = getattr(trainer, "_birds_last_gammas", None)
    if first is not None and last is not None:
        plot_gamma_distribution(first, last, save_dir / "bn_gamma.png", last_epoch=trainer.epoch + 1)
    writer = getattr(trainer, "_birds_writer", None)
    if writer is not None:
        writer.close()
        trainer._birds_writer = None


def pruned_trainer_class() -> type:
    """A `DetectionTrainer` that trains the module it is given instead of rebuilding it from its yaml.

    `Model.train()` calls `get_model(weights=<the loaded module>, cfg=<its yaml>)`; the stock trainer
    builds a fresh network from the yaml and copies the tensors whose shapes match, which turns a
    pruned network back into the unpruned one ("Transferred 295/355 items").
    """
    base = trainer_class()

    class PrunedDetectionTrainer(base):
        def get_model(self, cfg=None, weights=None, verbose=True):
            if isinstance(weights, torch.nn.Module):
                for parameter in weights.parameters():
                    parameter.requires_grad_(True)
                return weights
            return super().get_model(cfg=cfg, weights=weights, verbose=verbose)

    PrunedDetectionTrainer.__qualname__ = PrunedDetectionTrainer.__name__
    return PrunedDetectionTrainer

"""Tiny real trainings (imgsz 64, 3 epochs, fixed seed) that show what --sparse does."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from birdsdao.data_prep import ConvertConfig, convert_dataset
from birdsdao.errors import InvalidInputError, UnsupportedUltralyticsVersion, WeightsNotFoundError
from birdsdao.training.sparsity import l1_lambda
from birdsdao.training.train import TrainConfig, train_detector
from tests.conftest import make_tree

pytestmark = pytest.mark.slow
# Strong, fast settings so that three tiny epochs move γ visibly: no warm-up (it holds the BN learning rate
# near zero), a large lr and λ, and gradient accumulation on (nbs 4 over batches of 2).
TINY = {"warmup_epochs": 0, "lr0": 0.5, "nbs": 4, "plots": False, "val": False, "mosaic": 0.0}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_tree(root / "src", with_csv=True)
    convert_dataset(ConvertConfig(source=root / "src", output=root / "data", classes=4))
    return root / "data" / "data.yaml"


def tiny_run(data: Path, project: Path, *, sparse: bool, epochs: int = 3):
    config = TrainConfig(data=data, epochs=epochs, imgsz=64, batch=2, workers=0, project=project,
                         name="sparse" if sparse else "plain", seed=0, sparse=sparse, l1=1.0, optimizer="SGD",
                         overrides=TINY)
    return train_detector(config)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    return {"sparse": tiny_run(tiny_data, project, sparse=True), "plain": tiny_run(tiny_data, project, sparse=False)}


def test_sparse_training_shrinks_batchnorm_scales(runs):
    sparse, plain = runs["sparse"].sparsity["last"], runs["plain"].sparsity["last"]
    assert sparse["mean_abs_gamma"] < 0.5 * plain["mean_abs_gamma"]
    assert sparse["share_below_0.01"] > plain["share_below_0.01"]
    assert sparse["share_below_0.01"] > 0.01


def test_lambda_follows_the_schedule_in_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name, base in (("sparse", 1.0), ("plain", 0.0)):
        events = EventAccumulator(runs[name].tensorboard, size_guidance={"histograms": 0, "scalars": 0})
        events.Reload()
        logged = [(e.step, e.value) for e in events.Scalars("sparsity/l1_lambda")]
        assert logged == [(epoch, pytest.approx(l1_lambda(epoch, 3, base))) for epoch in range(3)]
        assert "sparsity/abs_gamma" in events.Tags()["histograms"]
        assert len(events.Histograms("sparsity/abs_gamma")) == 3
        assert {"sparsity/share_below_0.01", "sparsity/share_below_0.001", "train/box_loss"} <= set(
            events.Tags()["scalars"]
        )


def test_run_folder_holds_statistics_plot_and_summary(runs):
    run = runs["sparse"]
    stats = json.loads(Path(run.bn_stats).read_text())
    assert stats["overall"]["channels"] == sum(layer["channels"] for layer in stats["layers"].values())
    assert len(stats["layers"]) == 57  # every BatchNorm of YOLOv8n
    assert stats["l1"]["base"] == 1.0 and stats["l1"]["final"] == pytest.approx(l1_lambda(2, 3, 1.0))
    assert stats["l1"]["optimizer_steps_with_penalty"] > 0
    with open(run.gamma_plot, "rb") as plot:
        assert plot.read(8) == b"\x89PNG\r\n\x1a\n"
    assert run.prune == run.last and Path(run.last).exists()
    assert [row["keep"] for row in run.prune_preview] == [0.5, 0.7, 0.8]
    removed = [row["removed_channels"] for row in run.prune_preview]
    assert removed[0] >= removed[1] >= removed[2] > 0
    summary = json.loads((Path(run.run_dir) / "train_summary.json").read_text())
    assert summary["prune"] == run.last


def test_penalty_is_applied_once_per_optimizer_step_with_accumulation(tiny_data, tmp_path):
    from ultralytics import YOLO

    from birdsdao.training.ultralytics_adapter import trainer_class

    counts = {"batches": 0, "steps": 0}

    class CountingTrainer(trainer_class(l1=1.0)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback("on_train_start", self._hook_optimizer)
            self.add_callback("on_train_batch_end", lambda trainer: count("batches"))

        def _hook_optimizer(self, trainer):
            trainer.optimizer.register_step_post_hook(lambda *args: count("steps"))

    def count(what):
        counts[what] += 1

    model = YOLO("yolov8n.yaml")
    model.train(trainer=CountingTrainer, data=str(tiny_data), epochs=2, imgsz=64, batch=2, workers=0,
                project=str(tmp_path), name="count", optimizer="SGD", **TINY)
    assert counts["batches"] > counts["steps"] > 0  # accumulation: several batches per step
    assert model.trainer.l1_steps == counts["steps"]
    # L1 must be the only shrinkage on γ: BatchNorm scales sit in a parameter group without weight decay
    scales = {id(m.weight) for m in model.trainer.model.modules() if isinstance(m, nn.BatchNorm2d)}
    for group in model.trainer.optimizer.param_groups:
        if any(id(parameter) in scales for parameter in group["params"]):
            assert group["weight_decay"] == 0.0


def test_penalty_survives_amp_loss_scaling():
    """Under AMP the gradients are scaled when optimizer_step starts; the penalty must be scaled alike."""
    from birdsdao.training.ultralytics_adapter import trainer_class

    trainer = object.__new__(trainer_class(l1=0.01))  # no ultralytics set-up: only what optimizer_step uses
    net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4))
    net[1].weight.data = torch.tensor([0.5, -0.5, 0.2, 1.0])
    trainer.model, trainer.ema, trainer.device = net, None, torch.device("cpu")
    trainer.epoch, trainer.epochs, trainer.l1_steps = 0, 10, 0
    trainer.optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, enabled=True)
    loss = (net(torch.ones(1, 1, 2, 2)) * 0.0).sum()  # a loss whose own gradient is zero
    trainer.scaler.scale(loss).backward()  # as ultralytics does: gradients leave backward scaled
    trainer.optimizer_step()
    assert net[1].weight.data.tolist() == pytest.approx([0.49, -0.49, 0.19, 0.99])  # full λ, not λ/65536
    assert trainer.l1_steps == 1


def test_unsupported_ultralytics_is_refused(monkeypatch):
    import ultralytics

    from birdsdao.training.ultralytics_adapter import check_ultralytics

    monkeypatch.setattr(ultralytics, "__version__", "8.3.40")
    with pytest.raises(UnsupportedUltralyticsVersion, match="8.3.40"):
        check_ultralytics()


def test_bad_input_fails_before_training(tiny_data, tmp_path):
    def attempt(**changes):
        config = TrainConfig(data=tiny_data, epochs=1, imgsz=64, batch=2, workers=0, project=tmp_path, name="bad")
        for key, value in changes.items():
            setattr(config, key, value)
        train_detector(config)

    with pytest.raises(InvalidInputError, match="no such data.yaml"):
        attempt(data=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: images/train\nval: [unclosed\n")
    with pytest.raises(InvalidInputError, match=r"broken.yaml:\d+: not valid YAML"):
        attempt(data=broken)
    empty = tmp_path / "empty"
    (empty / "images" / "train").mkdir(parents=True)
    (empty / "images" / "val").mkdir(parents=True)
    (empty / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {0: bird}\n")
    with pytest.raises(InvalidInputError, match="the train split .* holds no images"):
        attempt(data=empty / "data.yaml")
    with pytest.raises(WeightsNotFoundError, match="nothing is downloaded|no such weights"):
        attempt(model="yolov8n.pt")
    with pytest.raises(InvalidInputError, match="--device 7"):
        attempt(device="7")
    with pytest.raises(InvalidInputError, match="did you mean lr0"):
        attempt(overrides={"lr00": 0.1})
    assert not (tmp_path / "bad").exists()


def test_val_command_reports_metrics_as_json(runs, tiny_data):
    from typer.testing import CliRunner

    from birdsdao_cli.main import app

    result = CliRunner().invoke(app, ["val", runs["sparse"].last, "--data", str(tiny_data), "--imgsz", "64",
                                      "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"weights", "data", "split", "map50", "map50_95", "precision", "recall", "speed_ms"}
    assert 0.0 <= report["map50_95"] <= report["map50"] <= 1.0
    assert report["speed_ms"]["inference"] > 0


def test_trainer_class_survives_the_cloudpickle_ddp_uses():
    """Multi-GPU DDP ships type(trainer) to every rank with cloudpickle: the settings must travel with it."""
    import cloudpickle

    from birdsdao.training.ultralytics_adapter import log_epoch, trainer_class

    original = trainer_class(l1=3e-3, l1_decay=0.5)
    copy = cloudpickle.loads(cloudpickle.dumps(original))
    assert (copy.l1_base, copy.l1_decay_share) == (3e-3, 0.5)
    assert cloudpickle.loads(cloudpickle.dumps(log_epoch)) is log_epoch  # callbacks travel by reference


def test_a_classifier_checkpoint_is_refused(tmp_path):
    from ultralytics import YOLO

    from birdsdao.training.checks import load_training_model

    classifier = YOLO("yolov8n-cls.yaml")
    classifier.save(str(tmp_path / "cls.pt"))
    with pytest.raises(InvalidInputError, match="a classify model; birds trains detectors"):
        load_training_model(str(tmp_path / "cls.pt"))

"""Fine-tuning a pruned detector trains it as it is, and refuses to end with another network."""

from pathlib import Path

import pytest
import torch

from birdsdao.data_prep import ConvertConfig, convert_dataset
from birdsdao.pruning.finetune import FinetuneConfig, PruningLostError, finetune_pruned
from birdsdao.pruning.prune import PruneConfig, prune_detector
from birdsdao.training.train import TrainConfig, train_detector
from birdsdao.training.validate import validate_detector
from tests.conftest import make_tree

pytestmark = pytest.mark.slow
QUICK = {"warmup_epochs": 0, "plots": False, "mosaic": 0.0}


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    make_tree(root / "src", with_csv=False)
    convert_dataset(ConvertConfig(source=root / "src", output=root / "data", classes=4))
    data = root / "data" / "data.yaml"
    run = train_detector(TrainConfig(data=data, epochs=2, imgsz=64, batch=4, workers=0, project=root / "runs",
                                     sparse=True, l1=0.1, overrides=QUICK))
    report = prune_detector(PruneConfig(weights=Path(run.last), keep=0.7, imgsz=64, out=root / "pruned"))
    return {"data": data, "report": report, "root": root}


def test_finetune_keeps_the_pruned_network_and_its_accuracy(pruned):
    data, report = pruned["data"], pruned["report"]
    before = validate_detector(Path(report.weights), data, imgsz=64, workers=0)
    run = finetune_pruned(FinetuneConfig(weights=Path(report.weights), data=data, epochs=2, imgsz=64, batch=4,
                                         workers=0, project=pruned["root"] / "ft", overrides=QUICK))
    assert run.params == report.params_after
    after = validate_detector(Path(run.weights), data, imgsz=64, workers=0)
    assert after.map50 >= before.map50
    checkpoint = torch.load(run.weights, map_location="cpu", weights_only=False)
    assert {p.dtype for p in checkpoint["model"].parameters()} == {torch.float32}


def test_a_rebuilt_network_is_refused(pruned, monkeypatch):
    import birdsdao.training.ultralytics_adapter as adapter

    monkeypatch.setattr(adapter, "pruned_trainer_class", lambda: adapter.trainer_class())  # the stock rebuild
    with pytest.raises(PruningLostError, match="instead of the pruned"):
        finetune_pruned(FinetuneConfig(weights=Path(pruned["report"].weights), data=pruned["data"], epochs=1,
                                       imgsz=64, batch=4, workers=0, project=pruned["root"] / "ft", name="stock",
                                       overrides=QUICK))


def test_prune_command_json(pruned):
    import json

    from typer.testing import CliRunner

    from birdsdao_cli.main import app

    source = pruned["report"].source
    result = CliRunner().invoke(app, ["prune", source, "--keep", "0.5", "--imgsz", "64",
                                      "--out", str(pruned["root"] / "cli"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["prune"]
    assert report["keep"] == 0.5 and report["params_after"] < report["params_before"]
    assert Path(report["weights"]).exists()
    bad = CliRunner().invoke(app, ["prune", source, "--keep", "0"])
    assert bad.exit_code == 2 and "--keep must be in (0, 1]" in bad.stderr


def test_export_command_checks_onnx_against_pytorch(pruned):
    import json

    from typer.testing import CliRunner

    from birdsdao_cli.main import app

    result = CliRunner().invoke(app, ["export", pruned["report"].weights, "--imgsz", "64", "--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["path"].endswith(".onnx") and Path(exported["path"]).exists()
    assert exported["max_abs_diff"] < 1e-3 * max(1.0, exported["max_abs_output"])

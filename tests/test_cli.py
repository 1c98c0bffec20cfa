import json
import subprocess
import sys
from unittest import mock

import pytest
from typer.testing import CliRunner

from birdsdao import __version__
from birdsdao.errors import DatasetNotFoundError
from birdsdao_cli.main import app

runner = CliRunner()
COMMANDS = ("prepare-data", "train", "val", "prune", "finetune", "export", "train-classifier", "ptune", "identify",
            "ask", "kb", "ui")
HEAVY = ("torch", "ultralytics", "transformers", "chromadb", "sentence_transformers", "streamlit")


@pytest.mark.parametrize("argv", [["--help"], *([command, "--help"] for command in COMMANDS)])
def test_help_does_not_import_heavy_libraries(argv):
    code = (
        "import sys\n"
        f"sys.argv = ['birds', *{argv!r}]\n"
        "from birdsdao_cli.main import app\n"
        "try:\n    app()\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"birdsdao {__version__}"


def test_prepare_data_help_teaches_with_an_example():
    result = runner.invoke(app, ["prepare-data", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "--species-file" in result.stdout


def test_user_errors_exit_2_with_one_line_and_no_traceback(tmp_path):
    result = runner.invoke(app, ["prepare-data", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "nowhere: no such folder" in result.stderr
    assert "Hint:" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_debug_lets_the_traceback_through(tmp_path):
    result = runner.invoke(app, ["--debug", "prepare-data", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert isinstance(result.exception, DatasetNotFoundError)


def test_home_that_is_a_file_is_a_user_error(tmp_path):
    home = tmp_path / "home"
    home.write_text("")
    result = runner.invoke(app, ["--home", str(home), "prepare-data", str(tmp_path), str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "is a file, not a folder" in result.stderr


def test_prepare_data_json_prints_only_the_report_on_stdout(birds_tree, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["prepare-data", str(birds_tree), str(out), "--classes", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out)
    assert report["images"] == {"train": 17, "val": 4, "test": 4}
    assert report["tied_at_cutoff"] == ["PARAKETT AUKLET", "RUFUOS MOTMOT", "ZEBRA DOVE"]


def test_prepare_data_human_output(birds_tree, tmp_path):
    result = runner.invoke(app, ["prepare-data", str(birds_tree), str(tmp_path / "out"), "-n", "6"])
    assert result.exit_code == 0, result.output
    assert "6 of 6 species kept (index: birds.csv); 3 files skipped" in result.stdout
    assert "skipped train/OVENBIRD/empty.jpg: empty file" in result.stdout


def test_prepare_data_passes_every_option_to_the_library(tmp_path):
    with mock.patch("birdsdao.data_prep.convert_dataset") as convert:
        convert.return_value.to_dict.return_value = {"ok": True}
        result = runner.invoke(app, [
            "prepare-data", "src", "out", "--classes", "12", "--boxes", "detector", "--detector", "yolov8n.pt",
            "--link", "copy", "--workers", "3", "--detector-conf", "0.4", "--device", "cpu", "--overwrite", "--json",
        ])
    assert result.exit_code == 0, result.output
    config = convert.call_args.args[0]
    assert (config.classes, config.boxes, str(config.detector), config.link) == (12, "detector", "yolov8n.pt", "copy")
    assert (config.workers, config.device, config.overwrite, config.species_file) == (3, "cpu", True, None)
    assert config.detector_conf == 0.4
    assert json.loads(result.stdout) == {"ok": True}


def test_prepare_data_existing_output_needs_overwrite(birds_tree, tmp_path):
    (tmp_path / "out").mkdir()
    result = runner.invoke(app, ["prepare-data", str(birds_tree), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--overwrite" in result.stderr


def test_train_passes_options_and_settings_to_the_library(tmp_path):
    with mock.patch("birdsdao.training.train.train_detector") as train:
        train.return_value.to_dict.return_value = {"run_dir": "x"}
        result = runner.invoke(app, [
            "--home", str(tmp_path), "train", "data.yaml", "--epochs", "3", "--imgsz", "64", "--sparse",
            "--l1", "0.003", "--set", "lr0=0.02", "--set", "cos_lr=true", "--json",
        ])
    assert result.exit_code == 0, result.output
    config = train.call_args.args[0]
    assert (config.epochs, config.imgsz, config.sparse, config.l1, config.l1_decay) == (3, 64, True, 0.003, 0.9)
    assert config.overrides == {"lr0": 0.02, "cos_lr": True}
    assert config.project == tmp_path.resolve() / "runs" / "train"
    assert json.loads(result.stdout) == {"run_dir": "x"}


def test_train_set_needs_key_equals_value():
    result = runner.invoke(app, ["train", "data.yaml", "--set", "lr0"])
    assert result.exit_code == 2
    assert "is not KEY=VALUE" in result.output


def test_train_missing_data_is_one_line(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "none.yaml: no such data.yaml" in result.stderr and "Traceback" not in result.output


def test_prune_with_finetune_hands_the_pruned_weights_on(tmp_path):
    with (
        mock.patch("birdsdao.pruning.prune.prune_detector") as prune,
        mock.patch("birdsdao.pruning.finetune.finetune_pruned") as tune,
        mock.patch("birdsdao.training.checks.check_run") as check,
    ):
        prune.return_value.weights = str(tmp_path / "pruned.pt")
        prune.return_value.to_dict.return_value = {"weights": "p"}
        tune.return_value.to_dict.return_value = {"params": 1}
        result = runner.invoke(app, ["--home", str(tmp_path), "prune", "last.pt", "--keep", "0.6", "--round-to", "8",
                                     "--finetune", "data.yaml", "--epochs", "4", "--json"])
    assert result.exit_code == 0, result.output
    config = prune.call_args.args[0]
    assert (config.keep, config.round_to, config.min_channels) == (0.6, 8, 8)
    tuning = tune.call_args.args[0]
    assert (str(tuning.weights), str(tuning.data), tuning.epochs) == (str(tmp_path / "pruned.pt"), "data.yaml", 4)
    assert tuning.project == tmp_path.resolve() / "runs" / "finetune"
    assert str(check.call_args.args[0].data) == "data.yaml"  # the fine-tuning is checked before pruning
    assert json.loads(result.stdout) == {"prune": {"weights": "p"}, "finetune": {"params": 1}}

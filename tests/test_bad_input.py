"""Every command answers bad input the same way: exit code 2, one line naming the path, no traceback,
and nothing half-written where its output would go.

The commands are read from the Typer app itself (sub-commands of groups such as `kb` included), so a
new command fails `test_every_command_has_its_bad_inputs` until its cases are listed in CASES. Every
path a case gives lives under a folder whose name has spaces, CJK and a `..` segment. All inputs are
tiny files made here; no case gets as far as loading a model unless the check needs one (a prefix is
matched against its base). "Unwritable" is a path under a regular file (root ignores permission bits
but not a file standing where a folder should be) and a read-only folder (skipped where permission bits
do not bind; as root they can be made to with `setpriv --bounding-set=-dac_override,-dac_read_search`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from birdsdao_cli.main import app
from tests.conftest import biased_detector, jpeg_bytes, make_tree

runner = CliRunner()
ODD = "观鸟 笔记"  # every input path runs through "<tmp>/in 输入/观鸟 笔记/../<name>"


@dataclass
class Run:
    argv: list[str]
    offending: Path | str  # what stderr must name
    watch: list[Path] = field(default_factory=list)  # where outputs would go: nothing may appear there


class Inputs:
    """The bad (and the few good) files a case needs, made on demand inside the test's tmp_path."""

    def __init__(self, tmp_path: Path, checkpoint: Path, request: pytest.FixtureRequest):
        self.request = request
        self.tmp = tmp_path
        self.real = tmp_path / "in 输入"
        (self.real / ODD).mkdir(parents=True)
        self.out = tmp_path / "out 输出"
        self.out.mkdir()
        self._checkpoint = checkpoint

    def at(self, name: str) -> Path:
        """The path a user would type: spaces, CJK and a `..` in it."""
        return self.real / ODD / ".." / name

    def write(self, name: str, data: bytes) -> Path:
        (self.real / name).write_bytes(data)
        return self.at(name)

    def missing(self, name: str) -> Path:
        return self.at(f"缺少的 {name}")

    def photo(self, name: str = "a photo.jpg") -> Path:
        return self.write(name, jpeg_bytes(48, 32, seed=3))

    def empty(self, name: str) -> Path:
        return self.write(name, b"")

    def noise(self, name: str) -> Path:
        """Random bytes under a name with the right extension."""
        return self.write(name, random.Random(name).randbytes(600))

    def folder(self, name: str = "a folder") -> Path:
        (self.real / name).mkdir(exist_ok=True)
        return self.at(name)

    def dict_pt(self) -> Path:
        """A torch file, but a plain dict of tensors and no ultralytics model."""
        import torch

        torch.save({"weights": torch.zeros(3)}, self.real / "a dict.pt")
        return self.at("a dict.pt")

    def checkpoint(self) -> Path:
        """A real (tiny) ultralytics detector checkpoint."""
        (self.real / "detector.pt").write_bytes(self._checkpoint.read_bytes())
        return self.at("detector.pt")

    def read_only_checkpoint(self) -> Path:
        """A checkpoint in a folder this process cannot write to (exports are written beside the weights)."""
        folder = self.real / "read-only"
        folder.mkdir()
        (folder / "detector.pt").write_bytes(self._checkpoint.read_bytes())
        folder.chmod(0o555)
        skip_if_writable(folder)
        return self.at("read-only/detector.pt")

    def tiny_base(self) -> Path:
        """A tiny Llama base (loads in a second); the bundled prefix was tuned on another base."""
        return self.request.getfixturevalue("tiny_model_dir")

    def blocked(self, name: str) -> tuple[Path, Path]:
        """(an output path that cannot be created, the regular file standing where its folder should be)."""
        blocker = self.out / "a file"
        blocker.write_text("not a folder")
        return blocker / name, blocker

    def kb(self, name: str) -> str:
        """A knowledge base, made with the CLI in this test's BIRDS_HOME."""
        made = runner.invoke(app, ["kb", "create", name])
        assert made.exit_code == 0, made.output
        return name

    def data_yaml(self, *, labels: bool = True) -> Path:
        """A one-image detection dataset (valid, or without its label files)."""
        root = self.real / "dataset"
        for split in ("train", "val"):
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)
            (root / "images" / split / "1.jpg").write_bytes(jpeg_bytes(64, 64, seed=5))
            if labels:
                (root / "labels" / split / "1.txt").write_text("0 0.5 0.5 1 1\n")
        (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                                        "names:\n  0: HOUSE FINCH\n  1: BANANAQUIT\n  2: OVENBIRD\n")
        return self.at("dataset/data.yaml")

    def birds525(self) -> Path:
        make_tree(self.real / "birds525", with_csv=True, quirks=False)
        return self.at("birds525")

    def alpaca(self) -> Path:
        return self.write("records.json", '[{"instruction": "丹顶鹤吃什么？", "input": "", "output": "鱼和虾。"}]'
                          .encode())


Case = Callable[[Inputs], Run]


def skip_if_writable(folder: Path) -> None:
    """Permission bits do not bind root (CAP_DAC_OVERRIDE): there the cases under a regular file stand in."""
    try:
        (folder / "probe").touch()
    except PermissionError:
        return
    (folder / "probe").unlink()
    pytest.skip("this process writes into read-only folders (root): the case under a file covers it")


def bundled_prefix() -> Path:
    from birdsdao.language_model.runtime import BUNDLED_PREFIX

    return BUNDLED_PREFIX


def weights_cases(argv: Callable[[Inputs, Path], list[str]], watch: Callable[[Inputs], list[Path]] = lambda i: [i.out],
                  *, folder: bool = True) -> dict[str, Case]:
    """Every kind of file that is not detector weights, where weights are expected."""
    kinds: dict[str, Callable[[Inputs], Path]] = {
        "missing weights": lambda i: i.missing("best.pt"),
        "empty weights": lambda i: i.empty("empty.pt"),
        "random bytes .pt": lambda i: i.noise("noise.pt"),
        "random bytes .onnx": lambda i: i.noise("noise.onnx"),
        "photo as weights": lambda i: i.photo("photo.jpg"),
        "random bytes .jpg as weights": lambda i: i.noise("junk.jpg"),
        "dict saved as .pt": lambda i: i.dict_pt(),
    }
    if folder:
        kinds["folder as weights"] = lambda i: i.folder("weights")
    return _cases(kinds, argv, watch)


def _cases(kinds: dict[str, Callable[[Inputs], Path]], argv: Callable[[Inputs, Path], list[str]],
           watch: Callable[[Inputs], list[Path]]) -> dict[str, Case]:
    """One case per kind of bad file: the file is made, put into the command line, and named by the error."""
    def case(make: Callable[[Inputs], Path]) -> Case:
        def build(i: Inputs) -> Run:
            bad = make(i)
            return Run(argv(i, bad), bad, watch(i))
        return build

    return {name: case(make) for name, make in kinds.items()}


def data_cases(argv: Callable[[Inputs, Path], list[str]], watch: Callable[[Inputs], list[Path]] = lambda i: [i.out],
               ) -> dict[str, Case]:
    """Every kind of file that is not a data.yaml, where a dataset is expected."""
    kinds: dict[str, Callable[[Inputs], Path]] = {
        "missing data.yaml": lambda i: i.missing("data.yaml"),
        "empty data.yaml": lambda i: i.empty("data.yaml"),
        "random bytes .yaml": lambda i: i.noise("data.yaml"),
        "checkpoint as dataset": lambda i: i.checkpoint(),
        "folder as data.yaml": lambda i: i.folder("dataset folder"),
    }
    return _cases(kinds, argv, watch)


def unwritable_cases(label: str, argv: Callable[[Inputs, Path], list[str]]) -> dict[str, Case]:
    """The output cannot be written: a regular file stands where its folder should be (any user, root too),
    or it lies in a read-only folder (permission bits, which root ignores: skipped as root)."""
    def under_a_file(i: Inputs) -> Run:
        out, blocker = i.blocked("output")
        return Run(argv(i, out), blocker, [i.out, i.real])

    def read_only(i: Inputs) -> Run:
        folder = i.out / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        skip_if_writable(folder)
        return Run(argv(i, folder / "output"), folder, [i.out, i.real])

    return {f"unwritable {label} (under a file)": under_a_file, f"unwritable {label} (read-only folder)": read_only}


def home_blocked_case(argv: list[str]) -> Case:
    """BIRDS_HOME (where KBs, models and runs go) cannot be created."""
    def build(i: Inputs) -> Run:
        home, blocker = i.blocked("home")
        return Run(["--home", str(home), *argv], blocker, [i.out])
    return build


def missing_kb_case(argv: Callable[[Inputs, str], list[str]]) -> Case:
    name = f"{ODD}/../不存在的 知识库"
    return lambda i: Run(argv(i, name), name, [i.out])


CASES: dict[tuple[str, ...], dict[str, Case]] = {
    ("prepare-data",): {
        "missing source": lambda i: Run(["prepare-data", str(i.missing("birds525")), str(i.out / "ds")],
                                        i.missing("birds525"), [i.out]),
        "checkpoint as source": lambda i: Run(["prepare-data", str(i.checkpoint()), str(i.out / "ds")],
                                              i.at("detector.pt"), [i.out]),
        "empty folder as source": lambda i: Run(["prepare-data", str(i.folder("empty")), str(i.out / "ds")],
                                                i.at("empty"), [i.out]),
        **unwritable_cases("output", lambda i, out: ["prepare-data", str(i.birds525()), str(out)]),
        "output is a file": lambda i: Run(["prepare-data", str(i.birds525()), str(i.photo())], i.at("a photo.jpg"),
                                          [i.out, i.real]),
        "missing species file": lambda i: Run(["prepare-data", str(i.birds525()), str(i.out / "ds"),
                                               "--species-file", str(i.missing("species.txt"))],
                                              i.missing("species.txt"), [i.out]),
        "random bytes species file": lambda i: Run(["prepare-data", str(i.birds525()), str(i.out / "ds"),
                                                    "--species-file", str(i.noise("species.txt"))],
                                                   i.at("species.txt"), [i.out]),
        "folder as species file": lambda i: Run(["prepare-data", str(i.birds525()), str(i.out / "ds"),
                                                 "--species-file", str(i.folder())], i.at("a folder"), [i.out]),
        "empty csv": lambda i: Run(["prepare-data", str(i.birds525()), str(i.out / "ds"), "--csv",
                                    str(i.empty("index.csv"))], i.at("index.csv"), [i.out]),
        "random bytes csv": lambda i: Run(["prepare-data", str(i.birds525()), str(i.out / "ds"), "--csv",
                                           str(i.noise("index.csv"))], i.at("index.csv"), [i.out]),
        **{f"detector: {name}": case for name, case in weights_cases(
            lambda i, bad: ["prepare-data", str(i.birds525()), str(i.out / "ds"), "--boxes", "detector",
                            "--detector", str(bad)]).items()},
    },
    ("train",): {
        **data_cases(lambda i, bad: ["train", str(bad), "--project", str(i.out / "runs")]),
        **{f"--model: {name}": case for name, case in weights_cases(
            lambda i, bad: ["train", str(i.data_yaml()), "--model", str(bad), "--project", str(i.out / "runs")]
        ).items()},
        **unwritable_cases("--project", lambda i, out: ["train", str(i.data_yaml()), "--project", str(out),
                                                             "--epochs", "1"]),
    },
    ("val",): {
        **weights_cases(lambda i, bad: ["val", str(bad), "--data", str(i.data_yaml())], lambda i: [i.real]),
        **{f"--data: {name}": case for name, case in data_cases(
            lambda i, bad: ["val", str(i.checkpoint()), "--data", str(bad)], lambda i: [i.real]).items()},
    },
    ("prune",): {
        **weights_cases(lambda i, bad: ["prune", str(bad)], lambda i: [i.real]),
        **unwritable_cases("--out", lambda i, out: ["prune", str(i.checkpoint()), "--out", str(out)]),
        **{f"--finetune: {name}": case for name, case in data_cases(
            lambda i, bad: ["prune", str(i.checkpoint()), "--out", str(i.out / "pruned"), "--finetune", str(bad)],
            lambda i: [i.out]).items()},
    },
    ("finetune",): {
        **weights_cases(lambda i, bad: ["finetune", str(bad), "--data", str(i.data_yaml())], lambda i: [i.real]),
        **{f"--data: {name}": case for name, case in data_cases(
            lambda i, bad: ["finetune", str(i.checkpoint()), "--data", str(bad)], lambda i: [i.real]).items()},
        "unwritable home (runs)": lambda i: home_blocked_case(["finetune", str(i.checkpoint()), "--data",
                                                               str(i.data_yaml()), "--epochs", "1"])(i),
    },
    ("export",): {
        **weights_cases(lambda i, bad: ["export", str(bad)], lambda i: [i.real]),
        "unwritable output (read-only folder of the weights)": lambda i: Run(
            ["export", str(i.read_only_checkpoint())], i.at("read-only"), [i.real]),
    },
    ("train-classifier",): {
        **data_cases(lambda i, bad: ["train-classifier", str(bad), "--out", str(i.out / "classifier")]),
        "dataset with no labels": lambda i: Run(["train-classifier", str(i.data_yaml(labels=False)), "--out",
                                                 str(i.out / "classifier")], i.at("dataset/data.yaml"), [i.out]),
        "photo as dataset": lambda i: Run(["train-classifier", str(i.photo()), "--out", str(i.out / "classifier")],
                                          i.at("a photo.jpg"), [i.out]),
        **unwritable_cases("--out", lambda i, out: ["train-classifier", str(i.data_yaml()), "--out", str(out)]),
    },
    ("ptune",): {
        "missing records": lambda i: Run(["ptune", str(i.missing("train.json")), "-o", str(i.out / "p")],
                                         i.missing("train.json"), [i.out]),
        "empty records": lambda i: Run(["ptune", str(i.empty("train.json")), "-o", str(i.out / "p")],
                                       i.at("train.json"), [i.out]),
        "random bytes .json": lambda i: Run(["ptune", str(i.noise("train.json")), "-o", str(i.out / "p")],
                                            i.at("train.json"), [i.out]),
        "photo as records": lambda i: Run(["ptune", str(i.photo()), "-o", str(i.out / "p")], i.at("a photo.jpg"),
                                          [i.out]),
        "checkpoint as records": lambda i: Run(["ptune", str(i.checkpoint()), "-o", str(i.out / "p")],
                                               i.at("detector.pt"), [i.out]),
        "folder as records": lambda i: Run(["ptune", str(i.folder()), "-o", str(i.out / "p")], i.at("a folder"),
                                           [i.out]),
        "missing --val-data": lambda i: Run(["ptune", str(i.alpaca()), "--val-data", str(i.missing("dev.json")),
                                             "-o", str(i.out / "p")], i.missing("dev.json"), [i.out]),
        **unwritable_cases("--output", lambda i, out: ["ptune", str(i.alpaca()), "-o", str(out)]),
        "missing --base-model": lambda i: Run(["ptune", str(i.alpaca()), "--base-model", str(i.missing("qwen")),
                                               "-o", str(i.out / "p")], i.missing("qwen"), [i.out]),
        "photo as --base-model": lambda i: Run(["ptune", str(i.alpaca()), "--base-model", str(i.photo()),
                                                "-o", str(i.out / "p")], i.at("a photo.jpg"), [i.out]),
        "missing --prefix": lambda i: Run(["ptune", str(i.alpaca()), "--eval-only", "--prefix",
                                           str(i.missing("prefix")), "-o", str(i.out / "p")],
                                          i.missing("prefix"), [i.out]),
        "prefix of another base": lambda i: Run(["ptune", str(i.alpaca()), "--eval-only", "--prefix",
                                                 str(bundled_prefix()), "--base-model", str(i.tiny_base()),
                                                 "-o", str(i.out / "p")], bundled_prefix(), [i.out]),
    },
    ("identify",): {
        "missing photo": lambda i: Run(["identify", str(i.missing("bird.jpg")), "--no-describe"],
                                       i.missing("bird.jpg"), [i.out]),
        "empty photo": lambda i: Run(["identify", str(i.empty("bird.jpg")), "--no-describe"], i.at("bird.jpg"),
                                     [i.out]),
        "random bytes .jpg": lambda i: Run(["identify", str(i.noise("bird.jpg")), "--no-describe"],
                                           i.at("bird.jpg"), [i.out]),
        "checkpoint as photo": lambda i: Run(["identify", str(i.checkpoint()), "--no-describe"],
                                             i.at("detector.pt"), [i.out]),
        "folder without photos": lambda i: Run(["identify", str(i.folder()), "--no-describe"], i.at("a folder"),
                                               [i.out]),
        **{f"--weights: {name}": case for name, case in weights_cases(
            lambda i, bad: ["identify", str(i.photo("bird.jpg")), "--weights", str(bad), "--no-describe",
                            "--save", str(i.out / "annotated")]).items()},
        **unwritable_cases("--save", lambda i, out: ["identify", str(i.photo("bird.jpg")), "--no-describe",
                                                          "--save", str(out)]),
        "missing --prefix": lambda i: Run(["identify", str(i.photo("bird.jpg")), "--prefix", str(i.missing("p"))],
                                          i.missing("p"), [i.out]),
        "missing --base-model": lambda i: Run(["identify", str(i.photo("bird.jpg")), "--base-model",
                                               str(i.missing("qwen"))], i.missing("qwen"), [i.out]),
    },
    ("ask",): {
        "missing --kb": missing_kb_case(lambda i, name: ["ask", "丹顶鹤吃什么？", "--kb", name, "--no-llm"]),
        "missing --prefix": lambda i: Run(["ask", "q", "--no-kb", "--prefix", str(i.missing("prefix"))],
                                          i.missing("prefix"), [i.out]),
        "prefix of another base": lambda i: Run(["ask", "q", "--no-kb", "--base-model", str(i.tiny_base()),
                                                 "--prefix", str(bundled_prefix())], bundled_prefix(), [i.out]),
        "photo as --prefix": lambda i: Run(["ask", "q", "--no-kb", "--prefix", str(i.photo())], i.at("a photo.jpg"),
                                           [i.out]),
        "missing --base-model": lambda i: Run(["ask", "q", "--no-kb", "--base-model", str(i.missing("qwen"))],
                                              i.missing("qwen"), [i.out]),
        "photo as --base-model": lambda i: Run(["ask", "q", "--no-kb", "--base-model", str(i.photo())],
                                               i.at("a photo.jpg"), [i.out]),
        "empty folder as --base-model": lambda i: Run(["ask", "q", "--no-kb", "--base-model", str(i.folder())],
                                                      i.at("a folder"), [i.out]),
    },
    ("ui",): {
        **{f"--weights: {name}": case for name, case in weights_cases(
            lambda i, bad: ["ui", "--weights", str(bad), "--no-llm"]).items()},
        "missing --prefix": lambda i: Run(["ui", "--prefix", str(i.missing("prefix"))], i.missing("prefix"), [i.out]),
        "photo as --prefix": lambda i: Run(["ui", "--prefix", str(i.photo())], i.at("a photo.jpg"), [i.out]),
        "missing --base-model": lambda i: Run(["ui", "--base-model", str(i.missing("qwen"))], i.missing("qwen"),
                                              [i.out]),
    },
    ("kb", "create"): {
        "missing --embedding-model": lambda i: Run(["kb", "create", "notes", "--embedding-model",
                                                    str(i.missing("m3e"))], i.missing("m3e"), [i.out]),
        "photo as --embedding-model": lambda i: Run(["kb", "create", "notes", "--embedding-model", str(i.photo())],
                                                    i.at("a photo.jpg"), [i.out]),
        "unwritable home": home_blocked_case(["kb", "create", "notes"]),
    },
    ("kb", "list"): {
        "unwritable home": home_blocked_case(["kb", "list"]),
    },
    ("kb", "show"): {"missing kb": missing_kb_case(lambda i, name: ["kb", "show", name])},
    ("kb", "add"): {
        "missing kb": missing_kb_case(lambda i, name: ["kb", "add", name, str(i.photo())]),
        "missing document": lambda i: Run(["kb", "add", "notes", str(i.missing("notes.md"))], i.missing("notes.md"),
                                          [i.out]),
        "unwritable home": lambda i: home_blocked_case(["kb", "add", "notes", str(i.alpaca())])(i),
        "only unreadable documents": lambda i: Run(["kb", "add", i.kb("notes"), str(i.noise("notes.pdf")),
                                                    str(i.photo())], i.at("notes.pdf"), [i.out]),
        "empty folder of documents": lambda i: Run(["kb", "add", i.kb("notes"), str(i.folder("empty notes"))],
                                                   i.at("empty notes"), [i.out]),
    },
    ("kb", "rebuild"): {"missing kb": missing_kb_case(lambda i, name: ["kb", "rebuild", name])},
    ("kb", "remove"): {"missing kb": missing_kb_case(lambda i, name: ["kb", "remove", name, "notes.md"])},
    ("kb", "delete"): {"missing kb": missing_kb_case(lambda i, name: ["kb", "delete", name, "--yes"])},
    ("kb", "search"): {"missing kb": missing_kb_case(lambda i, name: ["kb", "search", name, "丹顶鹤"])},
}


def command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command of the app, sub-commands of groups as ("kb", "add")."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [prefix]
    return [path for name, sub in subcommands.items() for path in command_paths(sub, (*prefix, name))]


def test_every_command_has_its_bad_inputs():
    commands = command_paths(typer.main.get_command(app))
    assert ("kb", "add") in commands and ("prune",) in commands  # the walk reaches groups and plain commands
    unlisted = [" ".join(path) for path in commands if path not in CASES]
    assert not unlisted, f"list the bad inputs of {unlisted} in tests/test_bad_input.py CASES"
    stale = [" ".join(path) for path in CASES if path not in commands]
    assert not stale, f"CASES lists commands the app no longer has: {stale}"
    assert all(CASES[path] for path in commands)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return biased_detector(tmp_path_factory.mktemp("detector") / "detector.pt", [2.0, -2.0, -2.0])


@pytest.fixture
def never_serve(monkeypatch):
    """`birds ui` must fail before it starts a server; if it got that far, the test fails instead of hanging."""
    import os
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError(f"birds ui started a server: {args}")

    for module, name in ((os, "execve"), (os, "execv"), (subprocess, "call"), (subprocess, "run"),
                         (subprocess, "Popen")):
        monkeypatch.setattr(module, name, refuse)


def _listing(folders: list[Path]) -> set[str]:
    return {str(path) for folder in folders if folder.exists() for path in folder.rglob("*")}


@pytest.mark.parametrize(("command", "kind"), [(path, kind) for path, kinds in CASES.items() for kind in kinds],
                         ids=lambda value: " ".join(value) if isinstance(value, tuple) else value)
def test_bad_input_gets_one_line_and_exit_2(command, kind, tmp_path, checkpoint, never_serve, request):
    inputs = Inputs(tmp_path, checkpoint, request)
    run = CASES[command][kind](inputs)
    before = _listing(run.watch)
    result = runner.invoke(app, run.argv)
    shown = f"argv: {run.argv}\nexit {result.exit_code}\nstderr:\n{result.stderr}\nexception: {result.exception!r}"
    assert result.exit_code == 2, shown
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    lines = result.stderr.splitlines()
    errors = [n for n, line in enumerate(lines) if line.startswith("Error:") or "Invalid value" in line]
    assert errors, shown
    assert str(run.offending) in lines[errors[-1]], f"the error line does not name {run.offending}\n{shown}"
    after = [line for line in lines[errors[-1] + 1:] if line.strip() and not line.startswith(("Hint:", "╰"))]
    assert not after, f"more than one line of error:\n{shown}"
    assert _listing(run.watch) == before, f"left behind: {_listing(run.watch) - before}\n{shown}"


def test_real_weights_pass_the_file_checks(checkpoint, tmp_path):
    """The sniffing in front of ultralytics refuses none of the formats birds itself writes or bundles."""
    import json

    import torch

    from birdsdao.inputs import weights_file
    from birdsdao.resources import weights_dir

    manifest = json.loads((weights_dir() / "MANIFEST.json").read_text(encoding="utf-8"))
    bundled = [weights_dir() / entry["path"] for entry in manifest["files"].values()]
    legacy = tmp_path / "legacy.pt"  # torch's pre-1.6 pickle format, which ultralytics still loads
    torch.save(torch.load(checkpoint, weights_only=False), legacy, _use_new_zipfile_serialization=False)
    for path in [checkpoint, legacy, *bundled]:
        assert weights_file(path) == path

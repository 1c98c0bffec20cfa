"""The built wheel carries everything birds reads at run time, under one `birdsdao` namespace.

A non-editable install (`pip install birdsdao`, or `pip install .`) has no checkout beside it: the species cards,
tuning and gold sets and the bundled weights must be package data. .ci/run also installs this wheel into a
fresh environment and runs identify and ask from another folder."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the test environment's setuptools builds it, nothing is fetched
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (built,) = out.glob("birdsdao-*.whl")
    return zipfile.ZipFile(built)


def tracked(folder: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line]


@pytest.mark.slow
def test_the_wheel_installs_one_namespace_besides_the_cli(wheel):
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"birdsdao", "birdsdao_cli"}
    for package in ("data_prep", "training", "pruning", "recognition", "language_model", "knowledge"):
        assert f"birdsdao/{package}/__init__.py" in wheel.namelist()


@pytest.mark.slow
def test_the_wheel_carries_every_bundled_asset(wheel):
    names = set(wheel.namelist())
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    data = [path for path in tracked("data") if not path.endswith(".py")]
    assert len(data) > 200  # cards, tuning sets, gold sets, the retrieval corpus
    assert [path for path in data if f"birdsdao/{path}" not in names] == []
    manifest = json.loads((ROOT / "weights" / "MANIFEST.json").read_text(encoding="utf-8"))
    weights = ["MANIFEST.json", *(entry["path"] for entry in manifest["files"].values())]
    assert [path for path in weights if f"birdsdao/weights/{path}" not in names] == []
    assert not [name for name in names if "/work/" in name or name.startswith("birdsdao/weights/work")]

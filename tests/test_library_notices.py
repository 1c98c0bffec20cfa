"""ask, identify and ptune say nothing a person cannot act on: no library's warnings, notices or loading bars.

Each command runs in a new process, since libraries print most of their notices once, at import or first load."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data

# what libraries print that birds must not pass on: Python warnings, transformers' bars and notices, the
# kernel-hub fallback of bitsandbytes, tracebacks
NOTICE = re.compile(r"Warning|warnings\.warn|deprecated|Loading weights|kernels-community|gemm_4bit|Traceback", re.I)


def birds(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIRDS_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"}
    code = "import sys; from birdsdao_cli.main import app; sys.argv = ['birds', *sys.argv[1:]]; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOTICE.search(line)]


@pytest.mark.slow
def test_ask_and_ptune_on_a_tiny_model_print_no_library_notices(tiny_model_dir, tmp_path):
    from tests.test_language_model import BIRDS, alpaca

    asked = birds("ask", "What does the barn swallow eat?", "--no-kb", "--base-model", str(tiny_model_dir),
                  "--max-new-tokens", "8", "--json", home=tmp_path / "home")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["answer"] is not None
    assert notices(asked.stderr) == []

    data = alpaca(tmp_path, BIRDS * 2)
    tuned = birds("ptune", str(data), "--base-model", str(tiny_model_dir), "--pre-seq-len", "4", "--max-steps", "2",
                  "--gradient-accumulation-steps", "1", "--max-target-length", "6", "-o", str(tmp_path / "prefix"),
                  home=tmp_path / "home")
    assert tuned.returncode == 0, tuned.stderr
    assert (tmp_path / "prefix" / "birds_prefix.json").is_file()
    assert notices(tuned.stderr) == []


@pytest.mark.slow
def test_identify_with_a_description_prints_no_library_notices(tiny_model_dir, tmp_path):
    photo = shared_data("birds525-mini") / "valid" / "HOUSE FINCH" / "4.jpg"
    result = birds("identify", str(photo), "--base-model", str(tiny_model_dir), "--max-new-tokens", "8", "--json",
                   home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert notices(result.stderr) == []


def test_the_bitsandbytes_kernel_hub_notice_is_dropped_once_a_model_loads(tiny_model_dir, tmp_path, caplog):
    from birdsdao.language_model.models import BITSANDBYTES_KERNEL_NOTICE, load_model

    load_model(tiny_model_dir, tmp_path / "models")
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING):
        logger.warning("%s: Kernel repository could not verify publisher trust status.", BITSANDBYTES_KERNEL_NOTICE)
        logger.warning("a bitsandbytes warning that means something")
    assert [record.getMessage() for record in caplog.records] == ["a bitsandbytes warning that means something"]

"""docs/cli.md is generated from the app; a command or option changed without it fails here."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "python -m typer birdsdao_cli.main utils docs --name birds --output docs/cli.md"


def test_cli_reference_is_current(tmp_path):
    fresh = tmp_path / "cli.md"
    subprocess.run([sys.executable, "-m", "typer", "birdsdao_cli.main", "utils", "docs", "--name", "birds",
                    "--output", str(fresh)], check=True, capture_output=True, cwd=ROOT)
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == current, f"docs/cli.md is stale: run `{REGENERATE}`"

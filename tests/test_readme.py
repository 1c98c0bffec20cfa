"""The README's two set-up commands are the ones CI runs and the ones a newcomer copies."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_after(heading: str, text: str) -> str:
    match = re.search(re.escape(heading) + r".*?```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert match, f"README has no code block after {heading!r}"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = code_after("**Test**", readme)
    assert command.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines()


def test_install_and_run_command_installs_the_same_torch_as_the_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    run = code_after("**Install and run**", readme)
    test = code_after("**Test**", readme)
    pair = "pip install torch==2.14.1 torchvision==0.29.1"
    assert pair in run and pair in test
    assert "birds " in run


def test_the_readme_is_short_and_shows_no_machine_paths():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 10 * 1024  # a newcomer's page; depth lives in docs/
    assert not re.search(r"/(work|root|home/\w+|tmp)/", readme)
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link

"""The layers stay layers (docs/architecture.md), read from the import statements themselves.

    CLI (birdsdao_cli), UI (birdsdao.ui)            may import everything below
    assistant (birdsdao.assistant)                  the library packages and the ground
    library packages (recognition, knowledge, …)    each other without cycles, and the ground
    ground (birdsdao's own modules)                 nothing of ours above it
"""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("data_prep", "training", "pruning", "recognition", "language_model", "knowledge")
FOLDERS = {**{name: f"birdsdao.{name}" for name in LIBRARY}, "assistant": "birdsdao.assistant",
           "birdsdao_cli": "birdsdao_cli"}


def layer_of(module: str) -> str:
    """The unit a module belongs to: a library package, the assistant, the UI, the CLI, or the ground."""
    parts = module.split(".")
    if parts[0] == "birdsdao_cli":
        return "birdsdao_cli"
    if len(parts) > 1 and parts[1] in (*LIBRARY, "assistant", "ui"):
        return f"birdsdao.{parts[1]}"
    return "ground"


def modules() -> dict[str, Path]:
    found = {}
    for folder in (*FOLDERS, "birdsdao"):
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            prefix = FOLDERS.get(folder, "birdsdao")
            found[".".join([prefix, *relative.parts]).removesuffix(".__init__")] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] in ("birdsdao", "birdsdao_cli")}


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules().items():
        for target in imports(path):
            if layer_of(target) != layer_of(module):
                graph[layer_of(module)].add(layer_of(target))
    return graph


def test_the_ground_imports_nothing_above_it():
    assert edges()["ground"] == set()


def test_no_library_package_imports_the_assistant_the_ui_or_the_cli():
    above = {"birdsdao.assistant", "birdsdao.ui", "birdsdao_cli"}
    for package in (f"birdsdao.{name}" for name in LIBRARY):
        assert not edges()[package] & above, package
    assert not edges()["birdsdao.assistant"] & {"birdsdao.ui", "birdsdao_cli"}


def test_the_packages_import_each_other_without_cycles():
    graph = edges()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for step in graph[start]:
            if step == goal or (step not in seen and reaches(step, goal, seen | {step})):
                return True
        return False

    cycles = sorted(f"{a} <-> {b}" for a in list(graph) for b in graph[a] if reaches(b, a, {b}))
    assert cycles == []


def test_only_the_adapter_imports_ultralytics():
    users = sorted(str(path.relative_to(ROOT)) for path in modules().values()
                   if any(line.strip().startswith(("import ultralytics", "from ultralytics"))
                          for line in path.read_text(encoding="utf-8").splitlines()))
    assert users == ["training/ultralytics_adapter.py"]


def test_the_tuning_set_builders_import_only_the_ground():
    """They turn species cards into training records; a KB, a model or a detector has no part in that."""
    builders = {"birdsdao.language_model.tuning_set", "birdsdao.language_model.grounded_set"}
    found = modules()
    for builder in builders:
        above = {name for name in imports(found[builder]) if layer_of(name) != "ground" and name not in builders}
        assert above == set(), builder

"""Where birdsdao keeps its state: knowledge bases, converted models and runs.

Precedence: an explicit value (a CLI flag) over the BIRDS_HOME environment variable over the
default `~/.birdsdao`. Later features add their keys here, each with the same precedence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import SettingsError

HOME_ENV = "BIRDS_HOME"
DEFAULT_HOME = Path("~/.birdsdao")


@dataclass(frozen=True)
class Settings:
    home: Path

    @property
    def kb_dir(self) -> Path:
        return self.home / "kb"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


def load_settings(home: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve the settings; nothing is created on disk until a feature writes there."""
    env = os.environ if env is None else env
    raw = home if home is not None else env.get(HOME_ENV) or DEFAULT_HOME
    path = Path(raw).expanduser()
    source = "--home" if home is not None else HOME_ENV if env.get(HOME_ENV) else "the default"
    hint = f"point {HOME_ENV} at a folder birdsdao may write to"
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{path} (from {source}) is a file, not a folder", hint=hint)
    blocker = next((parent for parent in path.parents if parent.exists()), None)
    if blocker is not None and not blocker.is_dir():  # the folder could never be created
        raise SettingsError(f"{path} (from {source}) cannot be created: {blocker} is a file, not a folder", hint=hint)
    return Settings(home=path.resolve())

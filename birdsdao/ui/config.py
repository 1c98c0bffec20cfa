"""What `birds ui` passes to the app: environment variables, so that Streamlit's runner and AppTest see the same."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from birdsdao.settings import Settings, load_settings

WEIGHTS_ENV = "BIRDS_UI_WEIGHTS"
BASE_MODEL_ENV = "BIRDS_UI_BASE_MODEL"
PREFIX_ENV = "BIRDS_UI_PREFIX"
NO_PREFIX_ENV = "BIRDS_UI_NO_PREFIX"  # "1": the default model without the bundled prefix
NO_LLM_ENV = "BIRDS_UI_NO_LLM"  # "1": descriptions and answers from retrieved text, no language model
CHROMA_HOST_ENV, CHROMA_PORT_ENV = "BIRDS_CHROMA_HOST", "BIRDS_CHROMA_PORT"


@dataclass(frozen=True)
class UiConfig:
    settings: Settings
    weights: str | None = None  # detector; None: the bundled one
    base_model: str | None = None  # None: the default Gemma
    prefix: str | None = None  # None: the bundled one with the default model
    no_prefix: bool = False
    no_llm: bool = False
    chroma_host: str | None = None
    chroma_port: int | None = None

    @property
    def uploads_dir(self) -> Path:
        """Where documents uploaded into a KB are kept: a KB refers to its documents by path (for rebuilds)."""
        return self.settings.home / "uploads"

    def to_env(self) -> dict[str, str]:
        env = {"BIRDS_HOME": str(self.settings.home), NO_LLM_ENV: "1" if self.no_llm else "",
               NO_PREFIX_ENV: "1" if self.no_prefix else ""}
        for key, value in ((WEIGHTS_ENV, self.weights), (BASE_MODEL_ENV, self.base_model), (PREFIX_ENV, self.prefix),
                           (CHROMA_HOST_ENV, self.chroma_host), (CHROMA_PORT_ENV, self.chroma_port)):
            env[key] = "" if value is None else str(value)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UiConfig:
        env = os.environ if env is None else env
        host = env.get(CHROMA_HOST_ENV) or None
        return cls(settings=load_settings(env=env), weights=env.get(WEIGHTS_ENV) or None,
                   base_model=env.get(BASE_MODEL_ENV) or None, prefix=env.get(PREFIX_ENV) or None,
                   no_prefix=env.get(NO_PREFIX_ENV, "") == "1", no_llm=env.get(NO_LLM_ENV, "") == "1",
                   chroma_host=host,
                   chroma_port=int(env.get(CHROMA_PORT_ENV) or 8000) if host else None)

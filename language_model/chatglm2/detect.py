"""Which GLM generation a model folder holds, read from its files without running any of its code."""

from __future__ import annotations

import json
from pathlib import Path

CHATGLM2 = "chatglm2"
CHATGLM3 = "chatglm3"
CHATGLM_V1 = "chatglm-6b"


def chatglm_generation(config: dict, folder: Path | None = None) -> str | None:
    """"chatglm2", "chatglm3", "chatglm-6b" (v1), or None for a folder that is not a ChatGLM at all.

    All three share model_type "chatglm". Version 1 has 2-D positions and no multi-query groups;
    ChatGLM3 has the ChatGLM2 architecture but role tokens in its tokenizer (and `rope_ratio` in the
    long-context variants), so its prompts differ.
    """
    remote = json.dumps(config.get("auto_map", {}))
    if config.get("model_type") != "chatglm" and "ChatGLM" not in remote:
        return None
    if config.get("position_encoding_2d") or "multi_query_group_num" not in config:
        return CHATGLM_V1
    name = str(config.get("_name_or_path", "")).lower()
    if "rope_ratio" in config or "chatglm3" in name or _has_role_tokens(folder):
        return CHATGLM3
    return CHATGLM2


def read_config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


def _has_role_tokens(folder: Path | None) -> bool:
    """ChatGLM3's tokenizer code names its role tokens; ChatGLM2's does not (read as text, never run)."""
    if folder is None:
        return False
    code = Path(folder) / "tokenization_chatglm.py"
    try:
        return "<|user|>" in code.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False

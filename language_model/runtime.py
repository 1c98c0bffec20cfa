"""A language model ready to answer: base, optional tuned prefix, CPU speed-ups; loaded once per process.

The default base model comes with a bundled P-Tuning v2 prefix (weights/prefix/, trained by
weights/make_prefix.sh on the bundled bird Q&A); it is applied unless another prefix is named or
`use_bundled_prefix=False` (`--no-prefix`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from language_model.models import DEFAULT_MODEL, LoadedModel, Progress, load_model

BUNDLED_PREFIX = Path(__file__).resolve().parents[1] / "weights" / "prefix"


def bundled_prefix() -> Path | None:
    """The bundled prefix folder, when this installation has it (a source checkout or an editable install)."""
    from language_model.ptune import PREFIX_MARKER

    return BUNDLED_PREFIX if (BUNDLED_PREFIX / PREFIX_MARKER).is_file() else None


def load_answering_model(base_model: str | os.PathLike | None, models_dir: Path, *, prefix: Path | None = None,
                         use_bundled_prefix: bool = True, device: str = "cpu", fast: bool = True,
                         progress: Progress | None = None) -> LoadedModel:
    """The base model (converted on first use), its prefix applied, and on CPU the bf16/int8 speed-up.

    Without `prefix`, the default base model takes the bundled one. If the bundled prefix does not fit
    the converted model (another transformers may convert it differently), the base model answers alone
    and `progress` is told why. The speed-up measured 2.6× faster generation at unchanged BLEU/ROUGE
    (bench/llm.py); `fast=False` keeps float32 for exact reproduction.
    """
    from transformers.utils import logging as hf_logging

    from language_model.ptune import PrefixMismatchError, load_prefix

    hf_logging.disable_progress_bar()  # a per-tensor bar on every start says nothing useful
    try:
        loaded = load_model(base_model, models_dir, device=device, progress=progress)
    finally:
        hf_logging.enable_progress_bar()
    model, applied = loaded.model, None
    if prefix is not None:
        model, applied = load_prefix(loaded, Path(prefix)), Path(prefix)
    elif use_bundled_prefix and loaded.name == DEFAULT_MODEL and bundled_prefix() is not None:
        try:
            model, applied = load_prefix(loaded, BUNDLED_PREFIX), BUNDLED_PREFIX
        except PrefixMismatchError as exc:
            if progress:
                progress(f"The bundled prefix does not fit this conversion of {DEFAULT_MODEL}; answering without "
                         f"it ({exc})")
    if fast and device == "cpu":
        from language_model.speed import speed_up_for_cpu

        model = speed_up_for_cpu(model)
    return replace(loaded, model=model, prefix=applied)


def try_load_answering_model(base_model: str | os.PathLike | None, models_dir: Path, **options):
    """(model, None), or (None, the reason) when it cannot load: with a KB, retrieved passages still answer."""
    from birdsdao.errors import BirdsError

    try:
        return load_answering_model(base_model, models_dir, **options), None
    except (BirdsError, OSError) as exc:
        return None, str(exc)

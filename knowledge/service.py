"""Knowledge-base operations as the CLI and the web UI call them: open, act, close.

Slow steps (reading files, loading the embedding model) happen before the store is opened, so the
embedded store's write lock is held only while Chroma is being written or read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from birdsdao.errors import InvalidInputError
from birdsdao.knowledge.embeddings import PACKAGED_MODELS, Embedder
from birdsdao.knowledge.loaders import SUFFIXES, load_all
from birdsdao.knowledge.retrieval import Hit, Method, search
from birdsdao.knowledge.store import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    AddResult,
    DocumentInfo,
    KbInfo,
    open_store,
)

if TYPE_CHECKING:
    from birdsdao.knowledge.snapshot import KbSnapshot

Progress = Callable[[int, int], None]
HOST_ENV, PORT_ENV = "BIRDS_CHROMA_HOST", "BIRDS_CHROMA_PORT"


@dataclass(frozen=True)
class StoreAddress:
    """Where KBs live: the embedded folder, or a Chroma server when `host` is set."""

    kb_dir: Path
    host: str | None = None
    port: int | None = None

    def open(self):
        return open_store(self.kb_dir, self.host, self.port)

    @property
    def embedded(self) -> bool:
        return not self.host


@cache
def embedder(spec: str | None = None) -> Embedder:
    """One loaded model per process and spec (the chat and the web UI ask many questions)."""
    return Embedder(spec)


def embedder_for(address: StoreAddress, name: str, spec: str | os.PathLike | None) -> Embedder:
    """The model to use with a KB: the one given, else the one recorded with it (a packaged model by its
    name, so KBs made with all-MiniLM-L6-v2 before the default changed keep it; a folder that still exists).

    Loading takes seconds, so it happens with the store closed; the KB checks the model when used.
    """
    kb = snapshot(address, name)
    if kb is None:
        with address.open() as store:
            kb = store.get(name)
    recorded = kb.metadata.get("embedding_path", "")
    packaged = kb.info.embedding_model if kb.info.embedding_model in PACKAGED_MODELS else None
    if spec is None and packaged:
        spec = packaged
    elif spec is None and recorded and Path(recorded).is_dir():
        spec = recorded
    return embedder(None if spec is None else str(spec))


def create(address: StoreAddress, name: str, embedding_model: str | None = None, description: str = "",
           chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> KbInfo:
    from birdsdao.knowledge.builtin import BUILTIN_DISPLAY_NAME, BUILTIN_NAME, is_builtin

    if is_builtin(name.strip()):
        raise InvalidInputError(f"{BUILTIN_NAME!r} / {BUILTIN_DISPLAY_NAME} is the built-in knowledge base's name",
                                hint="pick another name for yours")
    model = embedder(embedding_model)
    with address.open() as store:
        kb = store.create(name, model.id, description, chunk_size, chunk_overlap)
        if model.name not in PACKAGED_MODELS:
            kb.update_metadata(embedding_path=str(model.path))
        return kb.info


def list_kbs(address: StoreAddress) -> list[KbInfo]:
    with address.open() as store:
        return store.list()


def show(address: StoreAddress, name: str) -> tuple[KbInfo, list[DocumentInfo]]:
    with address.open() as store:
        kb = store.get(name)
        documents = kb.documents()
        kb.info.chunks = sum(doc.chunks for doc in documents)
        kb.info.documents = len(documents)
        return kb.info, documents


def store_size(address: StoreAddress) -> int | None:
    """Bytes on disk of the embedded store (all KBs share its files); None for a server."""
    if not address.embedded or not address.kb_dir.is_dir():
        return None
    return sum(path.stat().st_size for path in address.kb_dir.rglob("*") if path.is_file())


def _refuse_builtin(name: str, action: str) -> None:
    from birdsdao.knowledge.builtin import BUILTIN_NAME, is_builtin

    if is_builtin(name):
        raise InvalidInputError(
            f"the built-in knowledge base {BUILTIN_NAME!r} holds the species cards only, so it cannot {action}",
            hint="make your own: birds kb create NAME, then birds kb add NAME FILE...",
        )


def prepare(address: StoreAddress, name: str, progress: Progress | None = None, say=None) -> None:
    """Build the built-in KB when `name` is it and it is missing or stale; other KBs need nothing."""
    from birdsdao.knowledge.builtin import ensure_builtin, is_builtin

    if is_builtin(name):
        ensure_builtin(address, progress=progress, say=say)


def add(address: StoreAddress, name: str, paths: list[Path], embedding_model: str | None = None,
        progress: Progress | None = None, extra_metadata=None) -> AddResult:
    _refuse_builtin(name, "take other documents")
    report = load_all(paths)  # read (and report unreadable files) before taking the lock
    with address.open() as store:
        store.get(name)  # an unknown KB is said before anything about the files
    _refuse_nothing_readable(paths, report)
    model = embedder_for(address, name, embedding_model)
    with address.open() as store:
        kb = store.get(name)
        return kb.add_documents(report, model, progress=progress, extra_metadata=extra_metadata)


def _refuse_nothing_readable(paths: list[Path], report) -> None:
    """Unreadable files among readable ones are listed and skipped; when none can be read, it is an error."""
    if report.documents:
        return
    hint = f"birds kb add reads {', '.join(sorted(SUFFIXES))} files with text in them"
    if not report.skipped:
        raise InvalidInputError(f"{', '.join(map(str, paths))}: no files in it", hint=hint)
    first = report.skipped[0]
    more = f" (and {len(report.skipped) - 1} more unreadable files)" if len(report.skipped) > 1 else ""
    raise InvalidInputError(f"{first['path']}: {first['reason']}{more}", hint=hint)


def remove(address: StoreAddress, name: str, document: str) -> DocumentInfo:
    _refuse_builtin(name, "lose a card (rebuild it with `birds kb rebuild birds`)")
    with address.open() as store:
        return store.get(name).remove_document(document)


def delete(address: StoreAddress, name: str) -> KbInfo:
    with address.open() as store:
        return store.delete(name)


def snapshot(address: StoreAddress, name: str) -> KbSnapshot | None:
    """KB `name` to read without Chroma (knowledge.snapshot): its snapshot, made now from Chroma if it has
    none; None from a server, or for a KB too large for one. A KB that does not exist is an error."""
    from birdsdao.knowledge.snapshot import read_snapshot

    if not address.embedded:
        return None
    found = read_snapshot(address.kb_dir, name)
    if found is None:
        with address.open() as store:
            found = store.get(name).snapshot()
    return found


def get_info(address: StoreAddress, name: str) -> KbInfo:
    kb = snapshot(address, name)
    if kb is not None:
        return replace(kb.info)
    with address.open() as store:
        return store.get(name).info


def search_kb(address: StoreAddress, name: str, model: Embedder | None, text: str, k: int = 3,
              method: Method = "hybrid", where: dict | None = None) -> list[Hit]:
    """`retrieval.search` over KB `name`, read from its snapshot where it has one."""
    kb = snapshot(address, name)
    if kb is not None:
        return search(kb, model, text, k=k, method=method, where=where)
    with address.open() as store:
        return search(store.get(name), model, text, k=k, method=method, where=where)


def query(address: StoreAddress, name: str, text: str, k: int = 3, method: Method = "hybrid",
          embedding_model: str | None = None) -> list[Hit]:
    model = embedder_for(address, name, embedding_model) if method != "bm25" else None
    return search_kb(address, name, model, text, k=k, method=method)


def rebuild(address: StoreAddress, name: str, embedding_model: str | None = None,
            progress: Progress | None = None, say=None) -> AddResult:
    """Embed a KB's documents again from their files (the built-in KB: from the cards).

    Documents whose file is gone keep their chunks and are reported as skipped.
    """
    from birdsdao.knowledge.builtin import is_builtin, rebuild_builtin

    if is_builtin(name):
        return rebuild_builtin(address, progress=progress, say=say)
    with address.open() as store:
        documents = store.get(name).documents()
    present = [Path(doc.source) for doc in documents if Path(doc.source).is_file()]
    report = load_all(present)
    report.skipped += [{"path": doc.source, "reason": "the file is gone; its chunks are kept"}
                       for doc in documents if not Path(doc.source).is_file()]
    model = embedder_for(address, name, embedding_model)
    with address.open() as store:
        return store.get(name).add_documents(report, model, progress=progress, force=True)

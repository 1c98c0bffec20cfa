"""Knowledge bases in ChromaDB: one collection per KB, chunks with their sources and BM25 tokens.

Embedded mode (the default) keeps a `PersistentClient` under `BIRDS_HOME/kb`. Chroma's embedded
store is not process-safe, so every operation opens the client under a file lock and closes it
again: two `birds kb add` processes take turns instead of overwriting each other's index. With a
host and port, a Chroma server (`chroma run`) is used through `HttpClient`; the server serializes
writers itself.

Users name KBs freely (鸟类百科); Chroma collection names must be ASCII, so each KB has a slug and
keeps its display name, description, chunking and embedding model in the collection's metadata.
Embeddings are always computed here and passed in, so Chroma never loads (or downloads) a model.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from birdsdao.errors import BirdsError, InvalidInputError
from birdsdao.knowledge.embeddings import EmbeddingModelId
from birdsdao.knowledge.lexical import tokenize
from birdsdao.knowledge.loaders import Document, LoadReport, Page
from birdsdao.text_splitter import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunk, chunk_id, split_text

if TYPE_CHECKING:
    from birdsdao.knowledge.snapshot import KbSnapshot

MARKER = "birdsdao_kb"  # set on every collection birdsdao made; other collections are left alone
LOCK_NAME = ".birds-kb.lock"
LOCK_TIMEOUT_S = 600
_SAFE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]")

Progress = Callable[[int, int], None]


def page_chunks(page: Page, size: int, overlap: int) -> list[tuple[Chunk, str]]:
    """A page's chunks and the text each is stored with: the chunk, after the page's heading when it does not
    already start with it (a card's diet page cut in two still says whose diet the second half is)."""
    found = []
    for chunk in split_text(page.text, size, overlap):
        text = chunk.text
        if page.heading and not text.startswith(page.heading):
            text = f"{page.heading} {text}"
        found.append((chunk, text))
    return found


class KnowledgeBaseNotFound(BirdsError):
    """No KB of that name."""


class KnowledgeBaseExists(BirdsError):
    """A KB of that name exists already."""


class EmbeddingModelMismatch(BirdsError):
    """A KB is used with an embedding model other than the one it was built with."""


class DocumentNotFound(BirdsError):
    """No document in the KB matches what the user named."""


class StoreUnavailable(BirdsError):
    """The Chroma server cannot be reached, or the store folder is locked for too long."""


def kb_slug(name: str) -> str:
    """Chroma collection name for a KB name: the name itself when Chroma accepts it, else ASCII + a hash."""
    if _SAFE_NAME.fullmatch(name) and ".." not in name and not _is_ip(name):
        return name
    ascii_part = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{ascii_part}-{digest}" if ascii_part else f"kb-{digest}"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_kb_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(char) < 32 for char in name):
        raise InvalidInputError(f"{name!r} is not a usable knowledge-base name (1–100 printable characters)")
    return name


@dataclass
class DocumentInfo:
    doc_id: str
    source: str  # the file's absolute path when it was added
    chunks: int
    pages: int
    characters: int
    content_sha1: str
    added: str


@dataclass
class KbInfo:
    name: str
    slug: str
    description: str
    embedding_model: str
    embedding_fingerprint: str
    embedding_dimension: int
    chunk_size: int
    chunk_overlap: int
    created: str
    chunks: int = 0
    documents: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)  # sources new to the KB
    replaced: list[str] = field(default_factory=list)  # sources whose text changed: old chunks gone
    unchanged: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # readable, but no text
    skipped: list[dict[str, str]] = field(default_factory=list)  # unreadable: {"path", "reason"}
    chunks_added: int = 0
    chunks_removed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def document_id(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def content_digest(document: Document) -> str:
    digest = hashlib.sha1()
    for page in document.pages:
        digest.update(f"{page.page}\x00{page.text}\x01".encode())
    return digest.hexdigest()


def kb_info(slug: str, meta: dict) -> KbInfo:
    """A KB's description as its collection's metadata records it."""
    return KbInfo(
        name=meta.get("display_name", slug), slug=slug,
        description=meta.get("description", ""), embedding_model=meta.get("embedding_model", "?"),
        embedding_fingerprint=meta.get("embedding_fingerprint", ""),
        embedding_dimension=int(meta.get("embedding_dimension", 0)),
        chunk_size=int(meta.get("chunk_size", DEFAULT_CHUNK_SIZE)),
        chunk_overlap=int(meta.get("chunk_overlap", DEFAULT_CHUNK_OVERLAP)),
        created=meta.get("created", ""),
    )


def check_embedding_model(info: KbInfo, model: EmbeddingModelId) -> None:
    if (model.fingerprint, model.dimension) != (info.embedding_fingerprint, info.embedding_dimension):
        raise EmbeddingModelMismatch(
            f"knowledge base {info.name!r} was built with the embedding model {info.embedding_model} "
            f"({info.embedding_dimension} dimensions, fingerprint {info.embedding_fingerprint}); "
            f"{model.name} ({model.dimension} dimensions, fingerprint {model.fingerprint}) would search it blind",
            hint=f"use --embedding-model with the KB's model, or make a new KB with {model.name}",
        )


class KnowledgeBase:
    def __init__(self, collection, location: str = "", kb_dir: Path | None = None):
        self.collection = collection
        self.location = location  # the store it lives in (a folder, or a server's address)
        self.kb_dir = kb_dir  # the embedded store's folder, where its snapshots live (None: a server)
        self.metadata = dict(collection.metadata or {})
        self.info = kb_info(collection.name, self.metadata)
        self.revision = int(self.metadata.get("revision", 0))

    # --- reading ---

    def count(self) -> int:
        return self.collection.count()

    def check_embedding_model(self, model: EmbeddingModelId) -> None:
        check_embedding_model(self.info, model)

    def nearest(self, vector, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The `n` chunks closest to `vector` by Chroma's (approximate) index, as (id, cosine distance)."""
        found = self.collection.query(query_embeddings=[vector], n_results=n, where=_chroma_where(where),
                                      include=["distances"])
        return list(zip(found["ids"][0], found["distances"][0], strict=True))

    def snapshot(self) -> KbSnapshot | None:
        """A snapshot of this KB (written to the embedded store's folder), None when it is too large for one."""
        import numpy as np

        from birdsdao.knowledge.snapshot import MAX_CHUNKS, KbSnapshot

        if self.count() > MAX_CHUNKS:
            return None
        ids, texts, metas, vectors = self._read_all(with_embeddings=True)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.info.embedding_dimension or -1)
        snapshot = KbSnapshot(self.info.slug, self.metadata, ids, texts, metas, matrix, self.location)
        if self.kb_dir is not None:
            try:
                snapshot.write(self.kb_dir)
            except OSError:  # a folder this user may read but not write: searched from memory this time
                pass
        return snapshot

    def all_chunks(self) -> tuple[list[str], list[str], list[dict]]:
        """(ids, texts, metadatas) of every chunk."""
        return self._read_all(with_embeddings=False)[:3]

    def _read_all(self, with_embeddings: bool) -> tuple[list[str], list[str], list[dict], list]:
        """Every chunk, in pages so a large KB does not come in one reply."""
        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict] = []
        vectors: list = []
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        total, page = self.count(), 5000
        for offset in range(0, total, page):
            got = self.collection.get(include=include, limit=page, offset=offset)
            ids += got["ids"]
            texts += got["documents"]
            metas += got["metadatas"]
            if with_embeddings:
                vectors += list(got["embeddings"])
        return ids, texts, metas, vectors

    def documents(self) -> list[DocumentInfo]:
        found: dict[str, DocumentInfo] = {}
        pages: dict[str, set] = {}
        for _, text, meta in zip(*self.all_chunks(), strict=True):
            doc = found.get(meta["doc_id"])
            if doc is None:
                doc = found[meta["doc_id"]] = DocumentInfo(
                    meta["doc_id"], meta["source"], 0, 0, 0, meta.get("content_sha1", ""), meta.get("added", ""))
                pages[doc.doc_id] = set()
            doc.chunks += 1
            doc.characters += len(text)
            pages[doc.doc_id].add(meta.get("page", 0))
        for doc in found.values():
            doc.pages = len(pages[doc.doc_id])
        return sorted(found.values(), key=lambda doc: doc.source)

    def find_document(self, name: str) -> DocumentInfo:
        """A document by its path (as added or relative to here), its file name when unique, or its id."""
        documents = self.documents()
        resolved = str(Path(name).expanduser().resolve())
        exact = [doc for doc in documents if name in (doc.source, doc.doc_id) or doc.source == resolved]
        if exact:
            return exact[0]
        by_name = [doc for doc in documents if Path(doc.source).name == name]
        if len(by_name) == 1:
            return by_name[0]
        if by_name:
            raise DocumentNotFound(
                f"{len(by_name)} documents in {self.info.name!r} are called {name!r}",
                hint="name one by its full path: " + ", ".join(doc.source for doc in by_name),
            )
        raise DocumentNotFound(
            f"knowledge base {self.info.name!r} has no document {name!r}",
            hint=f"`birds kb show {self.info.name}` lists its documents",
        )

    # --- writing (the caller holds the store's write lock) ---

    def add_documents(self, report: LoadReport, embedder, progress: Progress | None = None,
                      extra_metadata: Callable[[Document], dict] | None = None, force: bool = False,
                      known_vectors: Mapping[str, list[float]] | None = None) -> AddResult:
        """Add or refresh documents; an unchanged document is left as it is (unless `force`: embedded again),
        a changed one is replaced whole. `known_vectors`: see `Embedder.embed_documents`."""
        self.check_embedding_model(embedder.id)
        result = AddResult(skipped=list(report.skipped))
        planned: list[tuple[Document, str, str, list[dict], list[str], list[str]]] = []
        for document in report.documents:
            source = str(Path(document.path).resolve())
            doc_id, digest = document_id(source), content_digest(document)
            old = self.collection.get(where={"doc_id": doc_id}, include=["metadatas"])
            if not force and old["ids"] and all(meta.get("content_sha1") == digest for meta in old["metadatas"]):
                result.unchanged.append(source)
                continue
            ids, texts, metas = self._chunks(document, source, doc_id, digest, extra_metadata)
            if not ids:
                result.empty.append(source)
                continue
            (result.replaced if old["ids"] else result.added).append(source)
            result.chunks_removed += len(old["ids"])
            planned.append((document, source, doc_id, metas, ids, texts))
        all_texts = [text for *_, texts in planned for text in texts]
        # embed everything first: a failure here leaves the KB exactly as it was
        all_embeddings = embedder.embed_documents(all_texts, progress=progress, known=known_vectors)
        if planned:
            self._drop_snapshot()
        for _, _, doc_id, *_ in planned:
            self.collection.delete(where={"doc_id": doc_id})
        # then write in large batches: each call to Chroma costs ~80 ms, however few rows it carries
        all_ids = [chunk for *_, ids, _ in planned for chunk in ids]
        all_metas = [meta for *_, metas, _, _ in planned for meta in metas]
        batch = _max_batch(self.collection)
        for start in range(0, len(all_ids), batch):
            end = start + batch
            self.collection.add(ids=all_ids[start:end], documents=all_texts[start:end],
                                embeddings=all_embeddings[start:end], metadatas=all_metas[start:end])
        result.chunks_added = len(all_ids)
        if planned:
            self._bump_revision()
        return result

    def _chunks(self, document: Document, source: str, doc_id: str, digest: str, extra_metadata):
        ids, texts, metas = [], [], []
        added = datetime.now(UTC).isoformat(timespec="seconds")
        extra = extra_metadata(document) if extra_metadata else {}
        seen: set[str] = set()
        for page in document.pages:
            for index, (chunk, text) in enumerate(page_chunks(page, self.info.chunk_size, self.info.chunk_overlap)):
                cid = chunk_id(source, page.page, chunk)
                if cid in seen:  # the same text at the same place twice (a repeated csv row): once is enough
                    continue
                seen.add(cid)
                ids.append(cid)
                texts.append(text)
                metas.append({
                    "doc_id": doc_id, "source": source, "page": page.page or 0, "chunk": index,
                    "start": chunk.start, "end": chunk.end, "content_sha1": digest, "added": added,
                    "tokens": " ".join(tokenize(text)), **extra,
                })
        return ids, texts, metas

    def remove_document(self, name: str) -> DocumentInfo:
        doc = self.find_document(name)
        self._drop_snapshot()
        self.collection.delete(where={"doc_id": doc.doc_id})
        self._bump_revision()
        return doc

    def update_metadata(self, **values) -> None:
        self._drop_snapshot()
        self.metadata = {**(self.collection.metadata or {}), **values}
        self.collection.modify(metadata=self.metadata)

    def _bump_revision(self) -> None:
        self.revision += 1
        self.update_metadata(revision=self.revision)

    def _drop_snapshot(self) -> None:
        """Before any write: a snapshot must never say more than Chroma holds (see knowledge.snapshot)."""
        from birdsdao.knowledge.snapshot import drop_snapshot

        drop_snapshot(self.kb_dir, self.info.slug)


def matches(meta: dict, where: dict | None) -> bool:
    """Whether a chunk's metadata satisfies a plain {key: value} filter (the subset of Chroma's `where` birds uses)."""
    return not where or all(meta.get(key) == value for key, value in where.items())


def _chroma_where(where: dict | None) -> dict | None:
    """Chroma wants one key per filter, several joined by $and."""
    if not where or len(where) == 1:
        return where
    return {"$and": [{key: value} for key, value in where.items()]}


def _max_batch(collection) -> int:
    try:
        return max(1, min(5000, int(collection._client.get_max_batch_size())))
    except Exception:  # an older client without the call: a size every Chroma accepts
        return 1000


class Store:
    """The KBs of one Chroma (embedded folder or server)."""

    def __init__(self, client, where: str, kb_dir: Path | None = None):
        self.client = client
        self.where = where
        self.kb_dir = kb_dir  # the embedded store's folder (None: a server)

    def _collections(self) -> list:
        collections = []
        for collection in self.client.list_collections():
            if (collection.metadata or {}).get(MARKER):
                collections.append(collection)
        return collections

    def list(self) -> list[KbInfo]:
        infos = []
        for collection in self._collections():
            kb = KnowledgeBase(collection)
            kb.info.chunks = collection.count()
            kb.info.documents = len({meta["doc_id"] for meta in kb.all_chunks()[2]})
            infos.append(kb.info)
        return sorted(infos, key=lambda info: info.name)

    def get(self, name: str) -> KnowledgeBase:
        for collection in self._collections():
            if name in ((collection.metadata or {}).get("display_name"), collection.name):
                return KnowledgeBase(collection, self.where, self.kb_dir)
        known = [KnowledgeBase(c).info.name for c in self._collections()]
        raise KnowledgeBaseNotFound(
            f"no knowledge base {name!r} in {self.where}",
            hint=("known: " + ", ".join(known)) if known else f"create it with `birds kb create {name}`",
        )

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except KnowledgeBaseNotFound:
            return False
        return True

    def create(self, name: str, model: EmbeddingModelId, description: str = "",
               chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
               slug: str | None = None) -> KnowledgeBase:
        name = check_kb_name(name)
        if chunk_size < 20 or not 0 <= chunk_overlap < chunk_size:
            raise InvalidInputError("chunk size must be at least 20 characters and the overlap smaller than it")
        if self.exists(name) or (slug and self.exists(slug)):
            raise KnowledgeBaseExists(f"knowledge base {name!r} exists already in {self.where}",
                                      hint=f"add documents with `birds kb add {name} FILE...`")
        metadata = {
            MARKER: 1, "display_name": name, "description": description, "embedding_model": model.name,
            "embedding_fingerprint": model.fingerprint, "embedding_dimension": model.dimension,
            "chunk_size": chunk_size, "chunk_overlap": chunk_overlap,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "revision": 0,
            "uid": uuid.uuid4().hex,  # tells a KB from a namesake made again (retrieval's per-process caches)
        }
        from birdsdao.knowledge.snapshot import drop_snapshot

        drop_snapshot(self.kb_dir, slug or kb_slug(name))  # a deleted namesake's, should one be left
        collection = self.client.create_collection(
            slug or kb_slug(name), metadata=metadata, embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}})
        return KnowledgeBase(collection, self.where, self.kb_dir)

    def delete(self, name: str) -> KbInfo:
        kb = self.get(name)
        kb.info.chunks = kb.count()
        kb._drop_snapshot()
        self.client.delete_collection(kb.info.slug)
        return kb.info


def _chroma_settings():
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


@contextmanager
def open_store(kb_dir: Path, host: str | None = None, port: int | None = None) -> Iterator[Store]:
    """The store, open for the length of the block: a server's, or the embedded one under its file lock."""
    import chromadb

    if host:
        try:
            client = chromadb.HttpClient(host=host, port=port or 8000, settings=_chroma_settings())
            client.heartbeat()
        except Exception as exc:  # connection errors come in several types, by transport
            raise StoreUnavailable(
                f"no Chroma server answers at {host}:{port or 8000} ({type(exc).__name__})",
                hint="start one with `chroma run --path DIR --port PORT`, or drop --chroma-host to use the local store",
            ) from None
        yield Store(client, f"the Chroma server at {host}:{port or 8000}")
        return
    from filelock import FileLock, Timeout

    kb_dir = Path(kb_dir)
    kb_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(kb_dir / LOCK_NAME, timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise StoreUnavailable(
            f"{kb_dir} has been busy for {LOCK_TIMEOUT_S} s (another birds process is writing to it)",
            hint="wait for it to finish, or use a Chroma server for many writers",
        ) from None
    try:
        client = chromadb.PersistentClient(path=str(kb_dir), settings=_chroma_settings())
        try:
            yield Store(client, str(kb_dir), kb_dir)
        finally:
            _close(client)
    finally:
        lock.release()


def _close(client) -> None:
    """Drop the embedded client so that the next open reads what other processes wrote since."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    del client

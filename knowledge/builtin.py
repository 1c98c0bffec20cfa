"""The built-in knowledge base `birds` (鸟类百科), made from the bundled species cards.

Each card becomes two documents, Chinese and English; each field of a card is one page whose text
starts with the bird's names (its aliases too, so an older name still finds it), so a chunk about diet still
says whose diet it is. Every chunk carries the species' dataset name (`species`), which lets an identified
bird fetch its own card first.

The KB is built on first use and refreshed when the cards change (a digest of the cards is kept
with it); unchanged cards are not embedded again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from birdsdao.knowledge.card_vectors import stored_vectors
from birdsdao.knowledge.loaders import Document, LoadReport, Page
from birdsdao.knowledge.store import AddResult
from birdsdao.species_cards import LANGUAGES, SpeciesCard, bundled_cards, card_page_texts, card_title

BUILTIN_NAME = "birds"
BUILTIN_DISPLAY_NAME = "鸟类百科"
BUILTIN_DESCRIPTION = "Built-in: birdsdao's species cards for the 161 species of the bundled detector (zh + en)"

# changes when card_page_texts writes the pages differently, so that built-in KBs made before rebuild themselves
PAGES_VERSION = "3"


def is_builtin(name: str) -> bool:
    return name in (BUILTIN_NAME, BUILTIN_DISPLAY_NAME)


def card_pages(card: SpeciesCard, lang: str) -> list[Page]:
    """One page per filled field, each opening with the bird's names, which each later chunk repeats."""
    title = card_title(card, lang)
    return [Page(text, number, heading=title) for number, text in enumerate(card_page_texts(card, lang), start=1)]


def card_documents(cards: dict[str, SpeciesCard]) -> list[Document]:
    return [Document(path=Path(f"{card.path}#{lang}"), pages=card_pages(card, lang))
            for card in cards.values() for lang in LANGUAGES]


def card_chunk_texts(chunk_size: int | None = None, chunk_overlap: int | None = None) -> list[str]:
    """Every chunk text of the built-in KB, as the KB cuts the cards' pages (each once, in order)."""
    from birdsdao.knowledge.store import page_chunks
    from birdsdao.text_splitter import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

    size = chunk_size or DEFAULT_CHUNK_SIZE
    overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    texts = [text for document in card_documents(bundled_cards()) for page in document.pages
             for _, text in page_chunks(page, size, overlap)]
    return list(dict.fromkeys(texts))


def cards_digest() -> str:
    """A digest of the card files and the species list: cheap, so checking that the KB is current costs no
    card validation."""
    from birdsdao.species_cards import CARDS_DIR, SPECIES_LIST

    digest = hashlib.sha256(SPECIES_LIST.read_bytes() + PAGES_VERSION.encode())
    for path in sorted(CARDS_DIR.glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_builtin(address, progress: Callable[[int, int], None] | None = None, say=None,
                   embedding_model: str | None = None) -> AddResult | None:
    """Create or refresh the built-in KB when it is missing or its cards changed (None: it was current); made
    with another embedding model than today's default (all-MiniLM-L6-v2 before e5, or other e5 weights), it is
    made again. `embedding_model` (benchmarks) builds it with another packaged model instead."""
    from birdsdao.knowledge import service
    from birdsdao.knowledge.store import KnowledgeBaseNotFound

    digest = cards_digest()
    model = service.embedder(embedding_model)
    try:  # read from the snapshot when there is one: no Chroma in a process that only asks
        recorded = service.snapshot(address, BUILTIN_NAME)
        if recorded is None:
            with address.open() as store:
                recorded = store.get(BUILTIN_NAME)
        metadata, info = recorded.metadata, recorded.info
    except KnowledgeBaseNotFound:
        metadata, info = None, None
    if info is not None and (info.embedding_model, info.embedding_fingerprint) != (model.name, model.id.fingerprint):
        with address.open() as store:
            store.delete(BUILTIN_NAME)
        metadata = None
    if metadata is not None and metadata.get("cards_digest") == digest:
        return None
    cards = bundled_cards()
    if say:
        say("Building the built-in knowledge base 鸟类百科 from the species cards (once)…")
    with address.open() as store:
        if metadata is None:
            kb = store.create(BUILTIN_DISPLAY_NAME, model.id, BUILTIN_DESCRIPTION, slug=BUILTIN_NAME)
        else:
            kb = store.get(BUILTIN_NAME)
        by_path = {str(card.path.resolve()): card for card in cards.values()}
        result = kb.add_documents(LoadReport(documents=card_documents(cards)), model, progress=progress,
                                  extra_metadata=lambda document: _metadata(by_path, document),
                                  known_vectors=stored_vectors(model))
        stale = {doc.source for doc in kb.documents()} - {str(d.path.resolve()) for d in card_documents(cards)}
        for source in stale:  # a card that no longer exists
            kb.remove_document(source)
        kb.update_metadata(cards_digest=digest)
        kb.snapshot()  # what the next `birds ask` reads instead of Chroma
    return result


def _metadata(by_path: dict[str, SpeciesCard], document: Document) -> dict:
    path, lang = str(Path(document.path).resolve()).rsplit("#", 1)
    return {"species": by_path[path].dataset_name, "lang": lang}


def rebuild_builtin(address, progress=None, say=None) -> AddResult:
    from birdsdao.knowledge.store import KnowledgeBaseNotFound

    with address.open() as store:
        try:
            store.delete(BUILTIN_NAME)
        except KnowledgeBaseNotFound:
            pass
    return ensure_builtin(address, progress, say)

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

from birdsdao.knowledge.loaders import Document, LoadReport, Page
from birdsdao.knowledge.store import AddResult
from birdsdao.species_cards import LANGUAGES, SpeciesCard, bundled_cards

BUILTIN_NAME = "birds"
BUILTIN_DISPLAY_NAME = "鸟类百科"
BUILTIN_DESCRIPTION = "Built-in: birdsdao's species cards for the 161 species of the bundled detector (zh + en)"

FIELD_TITLES = {
    "zh": {"size": "体型", "distribution": "分布", "habitat": "栖息地", "diet": "食性", "behaviour": "习性与鸣声",
           "breeding": "繁殖", "similar": "相似种辨别", "conservation": "保护现状", "for_kids": "趣味知识"},
    "en": {"size": "size", "distribution": "range", "habitat": "habitat", "diet": "diet",
           "behaviour": "behaviour and voice", "breeding": "breeding", "similar": "telling it apart",
           "conservation": "conservation", "for_kids": "fun facts"},
}
IUCN_WORDS = {
    "zh": {"LC": "无危", "NT": "近危", "VU": "易危", "EN": "濒危", "CR": "极危", "EW": "野外灭绝", "EX": "灭绝",
           "DD": "数据缺乏", "NE": "未评估"},
    "en": {"LC": "Least Concern", "NT": "Near Threatened", "VU": "Vulnerable", "EN": "Endangered",
           "CR": "Critically Endangered", "EW": "Extinct in the Wild", "EX": "Extinct", "DD": "Data Deficient",
           "NE": "Not Evaluated"},
}


# changes when card_pages writes the pages differently, so that built-in KBs made before rebuild themselves
PAGES_VERSION = "2"


def is_builtin(name: str) -> bool:
    return name in (BUILTIN_NAME, BUILTIN_DISPLAY_NAME)


def card_pages(card: SpeciesCard, lang: str) -> list[Page]:
    """One page per filled field, each opening with the bird's names."""
    if lang == "zh":
        also = "、".join(card.aliases["zh"] + card.aliases["en"])
        title = f"{card.chinese_name}（{f'又名{also}；' if also else ''}{card.english_name}，{card.scientific_name}）"
        overview = (f"{title}，数据集名称 {card.dataset_name}，属于{card.texts['order']['zh']}"
                    f"{card.texts['family']['zh']}。学名 {card.scientific_name}。")
        if card.iucn:
            overview += f"IUCN 红色名录等级：{IUCN_WORDS['zh'][card.iucn]}（{card.iucn}）。"
    else:
        also = ", ".join(card.aliases["en"] + card.aliases["zh"])
        title = f"{card.english_name} ({f'also {also}; ' if also else ''}{card.chinese_name}, {card.scientific_name})"
        overview = (f"{title}, called {card.dataset_name} in the dataset; order {card.texts['order']['en']}, "
                    f"family {card.texts['family']['en']}. Its scientific name is {card.scientific_name}.")
        if card.iucn:
            overview += f" IUCN Red List: {IUCN_WORDS['en'][card.iucn]} ({card.iucn})."
    pages = [Page(overview, 1)]
    separator = "：" if lang == "zh" else ": "
    for field, heading in FIELD_TITLES[lang].items():
        if field == "for_kids":
            text = " ".join(card.for_kids[lang])
        else:
            text = card.texts[field][lang]
        if text:
            pages.append(Page(f"{title} {heading}{separator}{text}", len(pages) + 1))
    return pages


def card_documents(cards: dict[str, SpeciesCard]) -> list[Document]:
    return [Document(path=Path(f"{card.path}#{lang}"), pages=card_pages(card, lang))
            for card in cards.values() for lang in LANGUAGES]


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
    with address.open() as store:
        try:
            kb = store.get(BUILTIN_NAME)
            current = (kb.collection.metadata or {}).get("cards_digest")
            if (kb.info.embedding_model, kb.info.embedding_fingerprint) != (model.name, model.id.fingerprint):
                store.delete(BUILTIN_NAME)
                kb, current = None, None
        except KnowledgeBaseNotFound:
            kb, current = None, None
    if kb is not None and current == digest:
        return None
    cards = bundled_cards()
    if say:
        say("Building the built-in knowledge base 鸟类百科 from the species cards (once)…")
    with address.open() as store:
        if kb is None:
            kb = store.create(BUILTIN_DISPLAY_NAME, model.id, BUILTIN_DESCRIPTION, slug=BUILTIN_NAME)
        else:
            kb = store.get(BUILTIN_NAME)
        by_path = {str(card.path.resolve()): card for card in cards.values()}
        result = kb.add_documents(LoadReport(documents=card_documents(cards)), model, progress=progress,
                         extra_metadata=lambda document: _metadata(by_path, document))
        stale = {doc.source for doc in kb.documents()} - {str(d.path.resolve()) for d in card_documents(cards)}
        for source in stale:  # a card that no longer exists
            kb.remove_document(source)
        kb.collection.modify(metadata={**kb.collection.metadata, "cards_digest": digest})
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

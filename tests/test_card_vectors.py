"""The built-in KB's shipped vectors: current with the cards, the model's own, and used only by that model."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from birdsdao.knowledge.builtin import BUILTIN_NAME, card_chunk_texts, ensure_builtin
from birdsdao.knowledge.card_vectors import VECTORS_FILE, stored_vectors, write_vectors
from birdsdao.knowledge.embeddings import EmbeddingModelId, text_key
from birdsdao.knowledge.service import StoreAddress, embedder, query

REMAKE = "cards or model changed: remake them with `python -m birdsdao.knowledge.card_vectors`"


@pytest.fixture(scope="module")
def e5():
    return embedder(None)


@pytest.fixture
def counted(e5, monkeypatch):
    """Every text the model is asked to embed, in order."""
    seen: list[str] = []
    encode = e5.model.encode_document

    def counting(texts, **options):
        seen.extend(texts)
        return encode(texts, **options)

    monkeypatch.setattr(e5.model, "encode_document", counting)
    return seen


def test_the_shipped_vectors_cover_every_card_chunk(e5):
    stored = stored_vectors(e5)
    missing = [text for text in card_chunk_texts() if text_key(text) not in stored]
    assert stored and not missing, f"{len(missing)} card chunks have no shipped vector; {REMAKE}"


def test_the_shipped_vectors_are_what_the_model_gives_now(e5):
    stored = stored_vectors(e5)
    texts = random.Random(7).sample(card_chunk_texts(), 6)
    assert any(not text[0].isascii() for text in texts) and any(text[0].isascii() for text in texts)  # zh, en
    fresh = np.array(e5.embed_documents(texts))
    assert np.allclose(fresh, np.array([stored[text_key(text)] for text in texts]), atol=1e-6)


def test_known_vectors_are_taken_and_only_the_rest_embedded(e5, counted):
    first = e5.embed_documents(["丹顶鹤吃鱼和虾。"])[0]
    counted.clear()
    known = {text_key("丹顶鹤吃鱼和虾。"): first}
    vectors = e5.embed_documents(["丹顶鹤吃鱼和虾。", "The crane eats fish."], known=known)
    assert counted == ["The crane eats fish."]
    assert vectors[0] == first and len(vectors[1]) == e5.dimension


def test_another_models_vectors_are_never_used(e5, tmp_path):
    path = tmp_path / "vectors.npz"
    assert write_vectors(e5, ["白鹭", "egret"], path) == 2
    assert set(stored_vectors(e5, path)) == {text_key("白鹭"), text_key("egret")}
    other = SimpleNamespace(id=EmbeddingModelId(e5.name, "another-fingerprint", e5.dimension))
    assert stored_vectors(other, path) == {} and stored_vectors(e5, tmp_path / "none.npz") == {}
    assert VECTORS_FILE.stat().st_mode & 0o044 == 0o044  # readable by everyone who runs the install


def test_the_built_in_kb_embeds_nothing_on_a_fresh_install(tmp_path, e5, counted):
    address = StoreAddress(tmp_path / "kb")
    result = ensure_builtin(address)
    assert counted == [] and result.chunks_added == len(card_chunk_texts())
    hits = query(address, BUILTIN_NAME, "What does a house finch eat?", k=3, method="dense")
    assert any(hit.source.endswith("house-finch.yaml#en") for hit in hits)


def test_every_chunk_of_the_built_in_kb_says_whose_card_it_is():
    from birdsdao.species_cards import LANGUAGES, bundled_cards, card_title

    titles = tuple(card_title(card, lang) for card in bundled_cards().values() for lang in LANGUAGES)
    nameless = [text for text in card_chunk_texts() if not text.startswith(titles)]
    assert not nameless, f"{len(nameless)} chunks do not open with their bird's names, e.g. {nameless[0]!r}"


def test_a_page_heading_opens_each_later_chunk_once():
    from birdsdao.knowledge.loaders import Page
    from birdsdao.knowledge.store import page_chunks

    page = Page("Crane (丹顶鹤) diet: " + " ".join(f"It eats fish number {n}." for n in range(12)), 1,
                heading="Crane (丹顶鹤)")
    texts = [text for _, text in page_chunks(page, 80, 20)]
    assert len(texts) > 2 and all(text.startswith("Crane (丹顶鹤) ") for text in texts)
    assert all(text.count("Crane (丹顶鹤)") == 1 for text in texts)

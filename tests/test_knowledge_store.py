"""Knowledge bases in an embedded Chroma store and on a real Chroma server, with the packaged embedder."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from birdsdao.knowledge import service
from birdsdao.knowledge.service import StoreAddress
from birdsdao.knowledge.store import EmbeddingModelMismatch, KnowledgeBaseExists, KnowledgeBaseNotFound, kb_slug

MAGPIE_ZH = """# 红嘴蓝鹊
红嘴蓝鹊是鸦科鸟类，尾羽很长，嘴和脚都是红色的。它们常常结成小群在林缘和公园里活动，叫声响亮而嘈杂。
红嘴蓝鹊什么都吃：昆虫、蜥蜴、果实，也会掏其他鸟的巢，吃鸟卵和雏鸟。
"""
SWALLOW_EN = """# Barn swallow
The barn swallow catches flying insects on the wing, low over fields and water.
It builds a cup of mud pellets under the eaves of barns and houses.
Birds that breed in Europe spend the winter in Africa south of the Sahara.
"""
LOON_EN = """# Common loon
The common loon dives for fish in clear northern lakes; its legs sit far back, so it walks badly on land.
Its wailing call carries across the water at night.
"""


@pytest.fixture
def docs(tmp_path) -> Path:
    root = tmp_path / "docs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "notes.md").write_text(MAGPIE_ZH, encoding="utf-8")
    (root / "b" / "notes.md").write_text(SWALLOW_EN, encoding="utf-8")  # same name, other folder
    (root / "loon.txt").write_text(LOON_EN, encoding="utf-8")
    (root / "photo.bin").write_bytes(bytes(range(256)) * 4)  # binary: skipped, never fatal
    return root


@pytest.fixture
def address(tmp_path) -> StoreAddress:
    return StoreAddress(tmp_path / "kb")


def test_slugs_are_valid_chroma_names_and_keep_names_apart():
    assert kb_slug("notes") == "notes"
    slug = kb_slug("观鸟笔记")
    assert slug.startswith("kb-") and slug.isascii() and 3 <= len(slug) <= 63
    assert kb_slug("My birds") != kb_slug("my birds") and kb_slug("My birds").startswith("my-birds-")
    assert kb_slug("10.0.0.1") != "10.0.0.1" and kb_slug("a..b") != "a..b"


def test_add_is_idempotent_and_an_edit_replaces_the_old_chunks(address, docs):
    info = service.create(address, "观鸟笔记", description="测试")
    assert info.slug == kb_slug("观鸟笔记") and info.embedding_model == "multilingual-e5-small"
    first = service.add(address, "观鸟笔记", [docs])
    assert len(first.added) == 3 and first.chunks_added >= 3 and not first.replaced
    assert [Path(s["path"]).name for s in first.skipped] == ["photo.bin"]
    info, documents = service.show(address, "观鸟笔记")
    assert info.documents == 3 and info.chunks == first.chunks_added
    assert sorted(Path(d.source).parent.name + "/" + Path(d.source).name for d in documents) == [
        "a/notes.md", "b/notes.md", "docs/loon.txt"]

    again = service.add(address, "观鸟笔记", [docs])
    assert len(again.unchanged) == 3 and again.chunks_added == 0 and again.chunks_removed == 0

    loon = docs / "loon.txt"
    loon.write_text(LOON_EN + "\nLoons nest on the shore of islands, close to the water.\n", encoding="utf-8")
    edited = service.add(address, "观鸟笔记", [loon])
    assert edited.replaced == [str(loon.resolve())] and edited.chunks_removed >= 1
    info, documents = service.show(address, "观鸟笔记")
    assert info.documents == 3
    assert info.chunks == first.chunks_added - edited.chunks_removed + edited.chunks_added
    with address.open() as store:
        ids, texts, _ = store.get("观鸟笔记").all_chunks()
    assert len(ids) == len(set(ids)) == info.chunks
    assert sum("islands" in text for text in texts) == 1  # the new text once, the old version gone


def test_remove_needs_an_unambiguous_document_and_takes_all_its_chunks(address, docs):
    from birdsdao.knowledge.store import DocumentNotFound

    service.create(address, "notes")
    service.add(address, "notes", [docs])
    with pytest.raises(DocumentNotFound, match="2 documents in 'notes' are called 'notes.md'"):
        service.remove(address, "notes", "notes.md")
    removed = service.remove(address, "notes", str(docs / "a" / "notes.md"))
    assert removed.chunks >= 1
    info, documents = service.show(address, "notes")
    assert info.documents == 2 and all("/a/" not in d.source for d in documents)
    assert service.remove(address, "notes", "loon.txt").source.endswith("loon.txt")
    with pytest.raises(DocumentNotFound):
        service.remove(address, "notes", "loon.txt")


def test_hybrid_search_finds_chinese_and_english_and_knows_when_nothing_fits(address, docs):
    service.create(address, "观鸟笔记")
    service.add(address, "观鸟笔记", [docs])
    zh = service.query(address, "观鸟笔记", "红嘴蓝鹊平时吃什么？", k=2)
    assert zh[0].source.endswith("a/notes.md") and zh[0].relevant and zh[0].score == 1.0
    en = service.query(address, "观鸟笔记", "Where do swallows go for the winter?", k=2)
    assert en[0].source.endswith("b/notes.md") and en[0].relevant
    assert 0 < en[1].score < en[0].score <= 1.0
    none = service.query(address, "观鸟笔记", "How long do kakapo parrots live?", k=3)
    assert not any(hit.relevant for hit in none)
    dense = service.query(address, "观鸟笔记", "a diver whose eerie cries echo over lakes after dark", k=1,
                          method="dense")
    assert dense[0].source.endswith("loon.txt") and dense[0].bm25_rank is None


def test_a_question_about_a_bird_no_document_names_finds_nothing_relevant(address, docs):
    """Chunks about other birds share the question's other words (吃, winter); that does not answer it."""
    service.create(address, "观鸟笔记")
    service.add(address, "观鸟笔记", [docs])
    for absent in ("丹顶鹤平时吃什么？", "黑天鹅吃昆虫吗", "Where do emperor penguins spend the winter?"):
        hits = service.query(address, "观鸟笔记", absent, k=3)
        assert hits and not any(hit.relevant for hit in hits) and all(hit.asks_about_absent_birds for hit in hits)
    for present in ("红嘴蓝鹊平时吃什么？", "Where do barn swallows spend the winter?",
                    "Do barn swallows and emperor penguins both spend the winter in Africa?"):  # one it knows
        hits = service.query(address, "观鸟笔记", present, k=3)
        assert hits[0].relevant and not hits[0].asks_about_absent_birds, present


def test_names_are_unique_and_missing_ones_are_clear(address):
    service.create(address, "观鸟笔记")
    with pytest.raises(KnowledgeBaseExists):
        service.create(address, "观鸟笔记")
    with pytest.raises(KnowledgeBaseNotFound, match="no knowledge base '鸟类'") as missing:
        service.show(address, "鸟类")
    assert missing.value.hint == "known: 观鸟笔记"
    deleted = service.delete(address, "观鸟笔记")
    assert deleted.name == "观鸟笔记" and service.list_kbs(address) == []


@pytest.fixture(scope="module")
def other_embedder_dir(tmp_path_factory) -> Path:
    """A second, tiny sentence-transformers model (random BERT, MiniLM's tokenizer)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from birdsdao.knowledge.embeddings import resolve_embedding_model

    folder = tmp_path_factory.mktemp("other-embedder")
    bert_dir = folder / "bert"
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_embedding_model("all-MiniLM-L6-v2")[1]))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension())])
    out = folder / "tiny-embedder"
    model.save(str(out))
    return out


def test_a_kb_refuses_another_embedding_model(address, docs, other_embedder_dir):
    service.create(address, "notes")
    with pytest.raises(EmbeddingModelMismatch, match="was built with the embedding model multilingual-e5-small"):
        service.add(address, "notes", [docs], embedding_model=str(other_embedder_dir))
    with pytest.raises(EmbeddingModelMismatch):
        service.query(address, "notes", "swallow", embedding_model=str(other_embedder_dir))
    assert service.query(address, "notes", "swallow", method="bm25") == []  # BM25 needs no embedder

    info = service.create(address, "tiny", embedding_model=str(other_embedder_dir))
    assert info.embedding_model == "tiny-embedder" and info.embedding_dimension == 32
    service.add(address, "tiny", [docs])  # its recorded folder is used without naming it again
    with pytest.raises(EmbeddingModelMismatch):
        service.query(address, "tiny", "swallow", embedding_model="all-MiniLM-L6-v2")


WRITER = """
import sys
from pathlib import Path
from birdsdao.knowledge.service import StoreAddress, add
result = add(StoreAddress(Path(sys.argv[1])), "shared", [Path(p) for p in sys.argv[2:]])
print(result.chunks_added)
"""


@pytest.mark.slow
def test_a_kb_made_with_minilm_keeps_it_and_refuses_e5_with_a_hint(address, docs):
    service.create(address, "old notes", embedding_model="all-MiniLM-L6-v2")  # as every KB before e5
    service.add(address, "old notes", [docs])  # no model named: the recorded one, by name
    hits = service.query(address, "old notes", "Where do swallows go for the winter?", k=1)
    assert hits[0].source.endswith("b/notes.md") and hits[0].relevant
    assert hits[0].similarity_floor == 0.55  # MiniLM's cosines still judge relevance
    assert service.embedder_for(address, "old notes", None).name == "all-MiniLM-L6-v2"
    with pytest.raises(EmbeddingModelMismatch, match="built with the embedding model all-MiniLM-L6-v2") as refused:
        service.query(address, "old notes", "swallow winter", embedding_model="multilingual-e5-small")
    assert "--embedding-model" in refused.value.hint
    lexical = service.query(address, "old notes", "swallow winter", method="bm25")
    assert lexical and lexical[0].similarity_floor is None  # BM25 alone: no embedder, no floor


def test_the_default_e5_reads_chinese_and_ranks_without_a_floor(address, docs):
    from birdsdao.knowledge.embeddings import Embedder

    model = Embedder(None)
    assert (model.name, model.dimension, model.reads_chinese, model.similarity_floor) == (
        "multilingual-e5-small", 384, True, None)
    assert model.readable("红嘴蓝鹊吃什么") == "红嘴蓝鹊吃什么"  # nothing stripped, unlike MiniLM
    service.create(address, "观鸟笔记")
    service.add(address, "观鸟笔记", [docs])
    dense = service.query(address, "观鸟笔记", "那种长尾巴、红嘴红脚的蓝色鸟爱吃啥", k=3, method="dense")
    assert dense[0].source.endswith("a/notes.md")  # by meaning: the question shares few words with it
    assert dense[0].dense_rank == 1 and dense[0].similarity_floor is None


def test_the_builtin_kb_is_made_again_when_its_embedder_changes(address, monkeypatch):
    from birdsdao.knowledge import builtin
    from birdsdao.species_cards import bundled_cards

    cards = bundled_cards()
    two = {name: cards[name] for name in ("HOUSE FINCH", "KILLDEAR")}
    monkeypatch.setattr(builtin, "bundled_cards", lambda: two)
    first = builtin.ensure_builtin(address, embedding_model="all-MiniLM-L6-v2")  # a KB from before e5
    assert first is not None and service.get_info(address, "birds").embedding_model == "all-MiniLM-L6-v2"
    again = builtin.ensure_builtin(address)
    assert again is not None and len(again.added) == 4
    assert service.get_info(address, "birds").embedding_model == "multilingual-e5-small"
    assert builtin.ensure_builtin(address) is None  # current now: nothing to do
    hits = service.query(address, "birds", "双领鸻吃什么？", k=1)
    assert hits[0].metadata["species"] == "KILLDEAR"


def test_two_writer_processes_take_turns_and_lose_nothing(address, tmp_path):
    service.create(address, "shared")
    folders = []
    for writer in range(2):
        folder = tmp_path / f"writer{writer}"
        folder.mkdir()
        for number in range(12):
            (folder / f"note{number}.txt").write_text(
                f"Writer {writer} note {number}: the crested lark sings from fence post {number * 7 + writer}.\n",
                encoding="utf-8")
        folders.append(folder)
    root = Path(__file__).resolve().parents[1]
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(address.kb_dir), str(folder)], cwd=root,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for folder in folders]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [int(out.split()[-1]) for out, _ in outputs] == [12, 12]
    info, documents = service.show(address, "shared")
    assert info.documents == 24 and info.chunks == 24
    with address.open() as store:
        ids, _, metas = store.get("shared").all_chunks()
    assert len(set(ids)) == 24 and {Path(m["source"]).parent.name for m in metas} == {"writer0", "writer1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.fail(f"{chroma} is missing: chromadb installs it")
    port = _free_port()
    process = subprocess.Popen([str(chroma), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("chroma run did not start")
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_chroma_server_serves_the_same_operations(chroma_server, tmp_path, docs):
    address = StoreAddress(tmp_path / "unused", host="127.0.0.1", port=chroma_server)
    info = service.create(address, "观鸟笔记", description="on a server")
    assert info.slug == kb_slug("观鸟笔记")
    result = service.add(address, "观鸟笔记", [docs])
    assert len(result.added) == 3
    assert len(service.add(address, "观鸟笔记", [docs]).unchanged) == 3
    hits = service.query(address, "观鸟笔记", "红嘴蓝鹊吃什么", k=1)
    assert hits[0].source.endswith("a/notes.md") and hits[0].relevant
    assert service.remove(address, "观鸟笔记", "loon.txt").chunks >= 1
    assert [kb.documents for kb in service.list_kbs(address)] == [2]
    service.delete(address, "观鸟笔记")
    assert service.list_kbs(address) == []
    assert not (tmp_path / "unused").exists()  # nothing written locally


def test_an_absent_server_is_one_clear_error(tmp_path):
    from birdsdao.knowledge.store import StoreUnavailable

    address = StoreAddress(tmp_path / "kb", host="127.0.0.1", port=_free_port())
    with pytest.raises(StoreUnavailable, match="no Chroma server answers at 127.0.0.1"):
        service.list_kbs(address)


def test_json_of_a_search_is_plain_data(address, docs):
    service.create(address, "notes")
    service.add(address, "notes", [docs])
    data = [hit.to_dict() for hit in service.query(address, "notes", "mud nest under the eaves", k=2)]
    json.dumps(data)
    assert set(data[0]) >= {"source", "page", "chunk", "score", "similarity", "coverage", "relevant", "text"}

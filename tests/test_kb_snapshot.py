"""A KB's snapshot: what search reads without Chroma, never out of date after a birdsdao write."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from birdsdao.knowledge import service
from birdsdao.knowledge.retrieval import search
from birdsdao.knowledge.service import StoreAddress
from birdsdao.knowledge.snapshot import read_snapshot, snapshot_path
from birdsdao.knowledge.store import KnowledgeBaseNotFound

NOTES = {
    "swallow.md": "# Barn swallow\nThe barn swallow catches flying insects low over fields and water.\n"
                  "Birds that breed in Europe spend the winter in Africa south of the Sahara.\n",
    "loon.txt": "# Common loon\nThe common loon dives for fish in clear northern lakes.\n"
                "Its wailing call carries across the water at night.\n",
    "magpie.md": "# 红嘴蓝鹊\n红嘴蓝鹊是鸦科鸟类，尾羽很长，嘴和脚都是红色的。\n"
                 "红嘴蓝鹊什么都吃：昆虫、蜥蜴、果实，也会掏鸟巢。\n",
}
QUESTIONS = ["Where do swallows spend the winter?", "Which bird calls over lakes at night?", "红嘴蓝鹊吃什么？",
             "What does a loon eat?"]

SEARCH_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from birdsdao.knowledge import service
address = service.StoreAddress(Path(sys.argv[1]))
hits = service.query(address, "notes", sys.argv[2], k=2)
print(json.dumps({"sources": [Path(hit.source).name for hit in hits], "chromadb": "chromadb" in sys.modules}))
"""


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def address(tmp_path) -> StoreAddress:
    return StoreAddress(tmp_path / "kb")


def test_a_question_is_answered_from_the_snapshot_without_importing_chromadb(address, notes):
    service.create(address, "notes")
    service.add(address, "notes", [notes])
    here = [Path(hit.source).name for hit in service.query(address, "notes", QUESTIONS[0], k=2)]
    assert snapshot_path(address.kb_dir, "notes").is_file()
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", SEARCH_IN_A_NEW_PROCESS, str(address.kb_dir), QUESTIONS[0]],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found == {"sources": here, "chromadb": False}
    assert here[0] == "swallow.md"


def test_the_snapshot_ranks_as_chroma_does(address, notes):
    service.create(address, "notes")
    service.add(address, "notes", [notes])
    model = service.embedder_for(address, "notes", None)
    snapshot = service.snapshot(address, "notes")
    for method in ("dense", "hybrid"):
        for question in QUESTIONS:
            with address.open() as store:
                live = search(store.get("notes"), model, question, k=3, method=method)
            read = search(snapshot, model, question, k=3, method=method)
            assert [hit.id for hit in read] == [hit.id for hit in live], (method, question)
            for ours, chroma in zip(read, live, strict=True):
                assert ours.similarity == pytest.approx(chroma.similarity, abs=1e-4)


def test_every_write_drops_the_snapshot_and_search_sees_the_change(address, notes):
    path = snapshot_path(address.kb_dir, "notes")
    service.create(address, "notes")
    service.add(address, "notes", [notes / "swallow.md", notes / "magpie.md"])
    assert service.query(address, "notes", QUESTIONS[1], k=1)[0].source.endswith("swallow.md")
    assert path.is_file()

    service.add(address, "notes", [notes / "loon.txt"])
    assert not path.is_file()
    assert service.query(address, "notes", QUESTIONS[1], k=1)[0].source.endswith("loon.txt")
    assert path.is_file() and service.get_info(address, "notes").name == "notes"

    service.remove(address, "notes", "loon.txt")
    assert not path.is_file()
    assert not any(hit.source.endswith("loon.txt") for hit in service.query(address, "notes", QUESTIONS[1], k=3))

    service.delete(address, "notes")
    assert not path.is_file()
    with pytest.raises(KnowledgeBaseNotFound):
        service.query(address, "notes", QUESTIONS[1])
    service.create(address, "notes")  # a namesake starts empty, whatever was read before
    assert service.query(address, "notes", QUESTIONS[1]) == []


def test_a_damaged_snapshot_is_read_from_chroma_again(address, notes):
    service.create(address, "notes")
    service.add(address, "notes", [notes])
    expected = [hit.id for hit in service.query(address, "notes", QUESTIONS[2], k=2)]
    path = snapshot_path(address.kb_dir, "notes")
    path.write_bytes(b"not a snapshot")
    assert read_snapshot(address.kb_dir, "notes") is None
    assert [hit.id for hit in service.query(address, "notes", QUESTIONS[2], k=2)] == expected
    assert read_snapshot(address.kb_dir, "notes") is not None  # written again


def test_a_kb_too_large_for_a_snapshot_is_searched_through_chroma(address, notes, monkeypatch):
    from birdsdao.knowledge import snapshot

    monkeypatch.setattr(snapshot, "MAX_CHUNKS", 2)
    service.create(address, "notes")
    service.add(address, "notes", [notes])
    hits = service.query(address, "notes", QUESTIONS[0], k=1)
    assert hits[0].source.endswith("swallow.md")
    assert not snapshot_path(address.kb_dir, "notes").exists()


def test_a_snapshot_is_found_by_the_kb_s_display_name(address, notes):
    service.create(address, "观鸟笔记")
    service.add(address, "观鸟笔记", [notes])
    service.query(address, "观鸟笔记", QUESTIONS[2])
    found = read_snapshot(address.kb_dir, "观鸟笔记")
    assert found is not None and found.info.name == "观鸟笔记" and found.count() >= 3
    assert read_snapshot(address.kb_dir, "其他笔记") is None


def test_a_write_that_fails_half_way_leaves_no_snapshot_behind(address, notes, monkeypatch):
    from birdsdao.knowledge.store import KnowledgeBase

    service.create(address, "notes")
    service.add(address, "notes", [notes / "swallow.md"])
    service.query(address, "notes", QUESTIONS[1])
    assert snapshot_path(address.kb_dir, "notes").is_file()

    def crash(self):
        raise OSError("disk full")  # after the chunks were written, before the revision was

    monkeypatch.setattr(KnowledgeBase, "_bump_revision", crash)
    with pytest.raises(OSError):
        service.add(address, "notes", [notes / "loon.txt"])
    assert not snapshot_path(address.kb_dir, "notes").exists()
    monkeypatch.undo()
    assert service.query(address, "notes", QUESTIONS[1], k=1)[0].source.endswith("loon.txt")


def test_a_snapshot_that_cannot_be_written_leaves_the_search_working(address, notes):
    from birdsdao.knowledge.snapshot import SNAPSHOT_DIR

    service.create(address, "notes")
    service.add(address, "notes", [notes])
    shutil.rmtree(address.kb_dir / SNAPSHOT_DIR)
    (address.kb_dir / SNAPSHOT_DIR).write_text("a file where the folder would go", encoding="utf-8")
    hits = service.query(address, "notes", QUESTIONS[0], k=1)
    assert hits[0].source.endswith("swallow.md")


def test_a_kb_made_again_under_its_name_is_searched_afresh_in_the_same_process(address, tmp_path):
    """BM25's index is kept per process (the web UI lives long): a KB deleted and made again under the same name,
    with as many chunks, must not be searched with the old one's words."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    (first / "a.md").write_text("# Loon\nThe common loon dives for fish in clear northern lakes.\n", encoding="utf-8")
    (second / "b.md").write_text("# Swift\nThe common swift sleeps on the wing high above towns.\n", encoding="utf-8")
    service.create(address, "notes")
    service.add(address, "notes", [first])
    assert "loon" in service.query(address, "notes", "Which bird dives in lakes?", k=1, method="bm25")[0].text
    service.delete(address, "notes")
    service.create(address, "notes")
    service.add(address, "notes", [second])
    for method in ("bm25", "hybrid"):
        hits = service.query(address, "notes", "Which bird sleeps on the wing?", k=1, method=method)
        assert "swift" in hits[0].text and Path(hits[0].source).name == "b.md", method

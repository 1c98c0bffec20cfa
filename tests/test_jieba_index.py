"""jieba's dictionary read from an index on disk (knowledge/jieba_index.py): the same cuts as the whole
dictionary, built once, and a damaged index never in the way."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import jieba
import pytest

from birdsdao.knowledge.jieba_index import DiskFrequencies, attach_index, index_path
from birdsdao.knowledge.lexical import bird_words

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def index_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _texts() -> list[str]:
    records = json.loads((ROOT / "data" / "ptune" / "dev.json").read_text(encoding="utf-8"))
    texts = [str(value) for record in records[:300] for value in record.values()]
    for name in ("retrieval_gold.jsonl", "faithfulness_gold.jsonl"):
        lines = (ROOT / "data" / name).read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["question"] for line in lines]
    return [text for text in texts if any("\u3400" <= char <= "\u9fff" for char in text)]


def _with_bird_words(tokenizer):
    for word in bird_words():
        tokenizer.add_word(word, freq=20000)
    return tokenizer


def test_the_index_cuts_every_text_as_jiebas_whole_dictionary(index_folder):
    whole = jieba.Tokenizer()
    assert attach_index(whole) is False and isinstance(whole.FREQ, dict)  # built the index from its own load
    indexed = jieba.Tokenizer()
    assert attach_index(indexed) is True and isinstance(indexed.FREQ, DiskFrequencies)
    assert indexed.total == whole.total
    _with_bird_words(whole), _with_bird_words(indexed)
    texts = _texts()
    assert len(texts) > 300
    for text in texts:
        assert indexed.lcut(text) == whole.lcut(text), text
        assert list(indexed.cut_for_search(text)) == list(whole.cut_for_search(text)), text
    for word in ("白头海雕", "平时", "的", "鸟", "不存在的词语乙", "白头海"):
        assert indexed.FREQ.get(word) == whole.FREQ.get(word), word
        assert (word in indexed.FREQ) == (word in whole.FREQ), word


def test_the_index_is_built_once_and_a_damaged_one_is_rebuilt(index_folder):
    first = jieba.Tokenizer()
    attach_index(first)
    path = index_path(first)
    assert path.parent == index_folder and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert attach_index(jieba.Tokenizer()) is True and path.stat().st_mtime_ns == stamp
    path.write_bytes(b"not a database")
    damaged = jieba.Tokenizer()
    assert attach_index(damaged) is False and damaged.lcut("白头海雕吃鱼") == first.lcut("白头海雕吃鱼")
    assert attach_index(jieba.Tokenizer()) is True  # written again


def test_a_tokenizer_already_loaded_keeps_its_words(index_folder):
    loaded = jieba.Tokenizer()
    loaded.initialize()
    loaded.add_word("鸟之道词", freq=50000)
    assert attach_index(loaded) is False
    assert isinstance(loaded.FREQ, dict) and loaded.FREQ["鸟之道词"] == 50000

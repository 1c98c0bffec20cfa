"""Words for BM25: jieba for Chinese (with bird names kept whole), lower-cased words for English.

The packaged embedding model reads almost no Chinese, so Chinese retrieval stands on these tokens.
jieba's search mode also emits the parts of long words (红嘴蓝鹊 → 红嘴, 蓝鹊, 红嘴蓝鹊), so a
question that names a bird only in part still matches.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from functools import cache

from birdsdao.resources import data_dir

BIRD_WORDS_FILE = data_dir() / "bird_words.zh.txt"
BIRD_NAMES_EN_FILE = data_dir() / "bird_names.en.txt"

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|[\u3400-\u9fff]+")
_HAN = re.compile(r"[\u3400-\u9fff]")
# what Chinese bird names end in: a character of the bird radical (鳥/鸟, U+9CE5–U+9E74: 鹤, 鹅, 鸡, 鹮 …) other
# than 鸟 itself (小鸟, 候鸟, 水鸟 are kinds, not names), or a bird word of the 隹 radical
_BIRD_ENDING = re.compile(r"(?:[\u9ce5-\u9e1e\u9e20-\u9e74]|[雀雁雉隼])$")
# the commonest function words of both languages: they match everything and mean nothing
_STOPWORDS = frozenset(
    """a an the and or of to in on at for by with from as is are was were be been being it its this that these those
    what which who whom whose how why when where do does did can could would should will shall may might must
    i me my we our you your he she they them their his her there here than then so not no if about into over
    s t any some all also just very more most such only own same other tell please know""".split()
    + list("的了是在和与及或也都就而之其这那些个有吗呢吧啊呀么着过被把给对从向让为以")
    + "什么 怎么 怎样 如何 哪些 哪里 哪儿 为什么 多少 一些 一个 请问 告诉 知识 关于".split()
    + "可以 能够 是否 还是 我们 你们 他们 它们 它的 一种".split()
)


@cache
def _jieba():
    import jieba

    from birdsdao.knowledge.jieba_index import attach_index

    jieba.setLogLevel(logging.WARNING)
    attach_index(jieba.dt)  # the dictionary read word by word from disk: loading it whole took 0.7-1.7 s
    for word in bird_words():
        jieba.add_word(word, freq=20000)
    return jieba


def bird_words() -> list[str]:
    """Chinese bird names jieba should never split: the species cards' names and aliases and
    `data/bird_words.zh.txt`."""
    words: list[str] = []
    if BIRD_WORDS_FILE.is_file():
        for line in BIRD_WORDS_FILE.read_text(encoding="utf-8").splitlines():
            word = line.split("#", 1)[0].strip()
            if word:
                words.append(word)
    from birdsdao.species_cards import card_names, chinese_aliases

    words += [chinese for _, chinese in card_names().values() if chinese]
    words += chinese_aliases()
    return sorted(set(words))


@cache
def _bird_name_set() -> tuple[str, ...]:
    return tuple(sorted(bird_words(), key=len, reverse=True))


def bird_names_in(text: str) -> list[str]:
    """Known Chinese bird names that a text mentions (longest first, none inside another)."""
    if not _HAN.search(text):  # no Chinese, no Chinese name: the names are not read (0.3 s of a question)
        return []
    found: list[str] = []
    for name in _bird_name_set():
        if name in text and not any(name in longer for longer in found):
            found.append(name)
    return found


def named_birds(text: str) -> list[str]:
    """Birds a question names, whether a KB knows them or not: Chinese words that end like a bird's name
    (丹顶鹤, 黑天鹅, 大山雀) or are on the list of names (`bird_names_in`), and the English names of the BIRDS-525
    species (emperor penguin). An English name comes as `plain` writes it."""
    found = bird_names_in(text)
    if _HAN.search(text):
        found += [word for word in _words(text, search_mode=False)
                  if len(word) > 1 and _BIRD_ENDING.search(word) and not any(word in name for name in found)]
    if re.search(r"[A-Za-z]", text):
        names, longest = _english_bird_names()
        words = plain(text).split()
        for size in range(min(longest, len(words)), 0, -1):  # longest first: "emperor penguin", not "penguin"
            for start in range(len(words) - size + 1):
                gram = " ".join(words[start:start + size])
                for name in (gram, gram.removesuffix("s"), gram.removesuffix("es")):
                    if name in names and not any(name in other for other in found):
                        found.append(name)
    return list(dict.fromkeys(found))


def plain(text: str) -> str:
    """English as names are compared in: lower case, no apostrophes, words apart by single spaces."""
    return " ".join(re.findall(r"[a-z]+", text.lower().replace("'", "").replace("’", "")))


@cache
def _english_bird_names() -> tuple[frozenset[str], int]:
    """The names of `data/bird_names.en.txt` as `plain` writes them, and the most words one has."""
    names = set()
    if BIRD_NAMES_EN_FILE.is_file():
        for line in BIRD_NAMES_EN_FILE.read_text(encoding="utf-8").splitlines():
            name = plain(line.split("#", 1)[0])
            if name:
                names.add(name)
    return frozenset(names), max((name.count(" ") + 1 for name in names), default=0)


def tokenize(text: str) -> list[str]:
    """BM25 tokens: Chinese runs cut by jieba's search mode, English words lower-cased; stopwords dropped."""
    return _words(text, search_mode=True)


def _words(text: str, search_mode: bool) -> list[str]:
    """Chinese runs cut by jieba (search mode: long words and their parts), English words stemmed."""
    words: list[str] = []
    for run in _WORD.findall(text.lower()):
        if run[0] >= "\u3400":  # jieba only when there is Chinese
            cut = _jieba().cut_for_search if search_mode else _jieba().lcut
            words += [word for word in cut(run) if word not in _STOPWORDS]
        elif run not in _STOPWORDS:
            words.append(_stem(run))
    return words


# What a question asks about -> the words the species cards (and most bird texts) use for it, so that
# "家朱雀吃什么" meets the card's 食性 page and "what does it eat" its diet page. Added to BM25 queries only.
_INTENT_WORDS = {
    "zh": {
        ("吃", "食物", "觅食", "捕食", "喂"): "食性 食物",
        ("住", "生活", "栖息", "哪里", "哪儿", "在哪"): "栖息地 分布",
        ("多大", "多长", "多重", "体长", "大小", "个头"): "体型 体长",
        ("繁殖", "下蛋", "产卵", "孵", "筑巢", "巢", "育雏"): "繁殖 巢",
        ("叫声", "鸣叫", "鸣唱", "叫", "唱"): "鸣声 习性",
        ("保护", "濒危", "数量", "威胁", "灭绝"): "保护现状 保护",
        ("区分", "区别", "分辨", "辨认", "相似", "像"): "相似种辨别",
    },
    "en": {
        ("eat", "food", "feed", "prey", "hunt"): "diet",
        ("live", "where", "found", "habitat", "range"): "habitat range",
        ("big", "size", "long", "large", "small", "weigh", "length"): "size",
        ("nest", "breed", "egg", "chick", "young"): "breeding nest",
        ("sound", "call", "song", "sing", "voice"): "behaviour voice",
        ("endangered", "threat", "threatened", "conservation", "population", "status"): "conservation",
        ("apart", "difference", "differ", "similar", "tell", "distinguish"): "telling apart similar",
    },
}


# "Tell me about the Bald Eagle" / "请告诉我些关于白头海雕的知识吧" (the description `birds identify` asks for)
# wants what a field guide's entry opens with; without this, the word "tell" would ask for the look-alike page
_OVERVIEW_CUES_ZH = ("知识", "介绍", "了解", "讲讲")
_OVERVIEW_WORDS = {"zh": "体型 分布 食性", "en": "size range diet"}


def intent_words(text: str) -> str:
    """The words texts use for what the question asks about (see _INTENT_WORDS); may be empty."""
    extra: list[str] = []
    lowered = text.lower()
    words = set(_WORD.findall(lowered))
    zh_cues = [cue for cues in _INTENT_WORDS["zh"] for cue in cues]
    if any(cue in text for cue in _OVERVIEW_CUES_ZH) and not any(cue in text for cue in zh_cues):
        return _OVERVIEW_WORDS["zh"]
    if {"tell", "about"} <= words and not words & {"apart", "difference", "differ", "distinguish"}:
        return _OVERVIEW_WORDS["en"]
    for cues, added in _INTENT_WORDS["zh"].items():
        if any(cue in text for cue in cues):
            extra.append(added)
    for cues, added in _INTENT_WORDS["en"].items():
        if any(cue in words or _stem(word) == cue for word in words for cue in cues):
            extra.append(added)
    return " ".join(extra)


def content_words(text: str) -> list[str]:
    """The question's words that carry meaning: like `tokenize`, but jieba's precise mode (no overlapping
    parts), for judging how much of a question a chunk covers."""
    return list(dict.fromkeys(_words(text, search_mode=False)))


def _stem(word: str) -> str:
    """A light English stem so 'eats'/'eat', 'nests'/'nest' meet; enough for short bird texts."""
    word = word.replace("’", "'").removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


COMMON_WORD_IDF = math.log(2)  # as if half the chunks had it
COMMON_CHINESE_FREQUENCY = 300  # in jieba's dictionary of ~60 million words


def is_common_word(token: str) -> bool:
    """An everyday word: frequent in jieba's dictionary (Chinese), or a whole word of BERT's vocabulary."""
    if token[0] >= "\u3400":
        return (_jieba().dt.FREQ.get(token) or 0) >= COMMON_CHINESE_FREQUENCY
    return token in _english_vocabulary()


@cache
def _english_vocabulary() -> frozenset[str]:
    """The ~20k whole English words of the packaged MiniLM's WordPiece vocabulary (empty if it is absent)."""
    try:
        from birdsdao.knowledge.embeddings import MINILM_MODEL, resolve_embedding_model

        vocab = resolve_embedding_model(MINILM_MODEL)[1] / "vocab.txt"
        words = vocab.read_text(encoding="utf-8").split()
    except Exception:  # no packaged model: every unknown word then counts as rare
        return frozenset()
    return frozenset(word for word in words if word.isascii() and word.isalpha())


class Bm25:
    """BM25+ (rank_bm25) over tokenized chunks, plus how much of a question a chunk covers.

    BM25+ rather than Okapi: its idf stays positive in a KB of a few documents, where Okapi scores a word
    found in half of them as zero."""

    def __init__(self, documents: Sequence[Sequence[str]], texts: Sequence[str]):
        from rank_bm25 import BM25Plus

        self.size = len(documents)
        self._bm25 = BM25Plus([list(tokens) or ["\x00"] for tokens in documents]) if documents else None
        self._texts = [text.lower() for text in texts]
        self._sets = [set(tokens) for tokens in documents]
        self._df: dict[str, int] = {}
        self._plain: list[str] | None = None

    def scores(self, query: Sequence[str]) -> list[float]:
        """A score per chunk; 0 for a chunk that shares no word with the query (BM25+ would give it delta)."""
        if not self._bm25 or not query:
            return [0.0] * self.size
        words = set(query)
        return [float(score) if words & self._sets[i] else 0.0
                for i, score in enumerate(self._bm25.get_scores(list(query)))]

    def idf(self, word: str) -> float:
        """Rarity of a word in the KB (chunks that contain it as text, whatever their word boundaries).

        A word no chunk has is as rare as it gets when it is rare in the language too (a bird the KB
        does not know: 鸮鹦鹉, kakapo), but weighs little when it is an everyday word (平时, usually)
        that a question may simply phrase differently."""
        if word not in self._df:
            self._df[word] = sum(word in text for text in self._texts)
        df = self._df[word]
        if df == 0 and is_common_word(word):
            return COMMON_WORD_IDF
        return math.log((self.size + 1) / (df + 0.5))

    def lacks(self, bird: str) -> bool:
        """Whether no chunk names `bird` (a name from `named_birds`). English is compared as `plain` writes
        it, on a substring: "emperor penguins" holds "emperor penguin" (and "emulate" holds "emu", which
        errs towards searching as before)."""
        if _HAN.search(bird):
            return not any(bird in text for text in self._texts)
        if self._plain is None:  # made once per index
            self._plain = [plain(text) for text in self._texts]
        return not any(bird in text for text in self._plain)

    def unknown(self, words: Iterable[str]) -> list[str]:
        """Words no chunk has and the language does not use every day: likely names the KB does not know."""
        return [word for word in words if self.idf(word) > COMMON_WORD_IDF and self._df.get(word) == 0]

    def coverage(self, words: Iterable[str], index: int) -> float:
        """Share of the question's weight (idf) whose words the chunk holds: 1.0 = every word is there."""
        words = list(words)
        total = sum(self.idf(word) for word in words)
        if total <= 0:
            return 0.0
        text = self._texts[index]
        return sum(self.idf(word) for word in words if word in text) / total

"""Extractive answers: the passages' own sentences that answer the question, each with the bird's name.

Used where the language model cannot be trusted to answer (the default in a language where generation
failed the faithfulness goal, see docs/answers.md) and in place of a generated answer the guard rejected.
Nothing is written: each line is a sentence of a passage, whole, with its passage's number.
"""

from __future__ import annotations

import re
from functools import cache

from birdsdao.knowledge.lexical import content_words, intent_words, tokenize

QUOTED_LABEL = {
    "cards": {"zh": "（摘自物种卡片原文，不是生成的回答）",
              "en": "(Quoted from the species cards, not a generated answer)"},
    "kb": {"zh": "（摘自知识库原文，不是生成的回答）",
           "en": "(Quoted from the knowledge base, not a generated answer)"},
}
_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=[.])\s+(?=[A-Z\"“(])")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ZH_PUNCTUATION = re.compile(r"[，。：；！？、（）]")
_BINOMIAL = re.compile(r"\b[A-Z][a-z]{2,} [a-z]{3,}\b")
MAX_SENTENCES = 3
# what a question asks -> words of the sentence (or of its passage's heading) that answer it, beyond the
# retrieval's intent words: the overview sentence holds the scientific name, the family and the Red List
_ASKS = {
    ("学名", "拉丁名", "scientific", "latin"): ("\x00binomial",),
    ("保护", "濒危", "等级", "conservation", "status", "endangered", "threatened"): ("iucn", "red list", "红色名录"),
    ("科", "family", "目", "order"): ("科", "family", "目", "order"),
    ("分布", "哪里", "where", "live", "range", "found"): ("range", "分布", "distribution"),
}


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(" ".join(text.split())) if part and part.strip()]


def bird_name(hit, lang: str) -> str:
    """The bird a card passage is about, in the reader's language ('' for other KBs' passages)."""
    species = (getattr(hit, "metadata", None) or {}).get("species")
    if not species:
        return ""
    from birdsdao.species_cards import card_names

    english, chinese = card_names().get(species, ("", ""))
    return (chinese if lang == "zh" else english) or english or species


@cache
def _card_heading() -> re.Pattern:
    """A card page's opening: the bird's names, then the field's heading ("西紫水鸡（…） 食性：")."""
    from birdsdao.species_cards import FIELD_TITLES

    headings = sorted({title for titles in FIELD_TITLES.values() for title in titles.values()}, key=len, reverse=True)
    return re.compile(r"^.{1,160}?[）)]\s*(" + "|".join(map(re.escape, headings)) + r")\s*[：:]\s*")


def split_heading(hit) -> tuple[str, str]:
    """(heading, body) of a passage: a card page loses its opening (the name is given again on each line)."""
    text = hit.text.strip()
    if (getattr(hit, "metadata", None) or {}).get("species"):
        match = _card_heading().match(text)
        if match:
            return match.group(1), text[match.end():]
    return "", text


def body(hit) -> str:
    return split_heading(hit)[1]


def _asked(question: str) -> list[str]:
    lowered = question.lower()
    return [word for cues, words in _ASKS.items() if any(cue in lowered for cue in cues) for word in words]


def _score(sentence: str, heading: str, words: list[str], intent: list[str], asked: list[str]) -> float:
    lowered, heading = sentence.lower(), heading.lower()
    found = sum(word in lowered for word in words)
    hinted = sum(word in lowered or word in heading for word in intent)
    answers = sum((bool(_BINOMIAL.search(sentence)) if word == "\x00binomial" else word in lowered or word in heading)
                  for word in asked)
    return found + 0.5 * hinted + 0.75 * min(answers, 2)


def best_sentences(question: str, hits, lang: str, limit: int = MAX_SENTENCES) -> list[tuple[int, str, str]]:
    """(passage number, bird name, sentence) for the sentences that best answer `question`, in passage order.

    A sentence scores by the question's content words it holds, plus half a point per word of what the
    question asks about (食性 for 吃什么, diet for "eat"); the best passage's first sentence is the
    fallback, so an answer is never empty when there are passages."""
    words = [word.lower() for word in content_words(question)]
    intent = [word.lower() for word in tokenize(intent_words(question))]
    asked = _asked(question)
    scored = []
    for number, hit in enumerate(hits, start=1):
        name = bird_name(hit, lang)
        heading, text = split_heading(hit)
        # the bird's own name is in every passage about it: it tells nothing about which sentence answers
        named = " ".join(filter(None, (name, *_other_names(hit)))).lower()
        own_words = [word for word in words if word not in named]
        for position, sentence in enumerate(sentences(text)):
            if is_chinese(sentence) != (lang == "zh"):
                continue  # the built-in KB holds both languages: quote the reader's
            # earlier passages rank higher, and within one the first sentences
            scored.append((_score(sentence, heading, own_words, intent, asked) - 0.1 * number - 0.01 * position,
                           number, position, name, sentence))
    if not scored:
        return []
    chosen = sorted(scored, key=lambda item: -item[0])[:limit]
    best = chosen[0][0]
    chosen = [item for item in chosen if item[0] >= best - 1.0] or chosen[:1]  # far weaker sentences add noise
    return [(number, name, sentence) for _, number, position, name, sentence
            in sorted(chosen, key=lambda item: (item[1], item[2]))]


def is_chinese(sentence: str) -> bool:
    """Chinese punctuation or mostly Chinese characters: an English sentence quoting a Chinese name
    ("Wood Duck (林鸳鸯, Aix sponsa)") stays English."""
    if _ZH_PUNCTUATION.search(sentence):
        return True
    letters = [char for char in sentence if not char.isspace()]
    return bool(letters) and len(_CJK.findall(sentence)) > 0.3 * len(letters)


def _other_names(hit) -> tuple[str, ...]:
    species = (getattr(hit, "metadata", None) or {}).get("species")
    if not species:
        return ()
    from birdsdao.species_cards import card_names

    return (*card_names().get(species, ()), species)


def quoted_lines(question: str, hits, lang: str) -> str:
    separator = "：" if lang == "zh" else ": "
    lines = []
    for number, name, sentence in best_sentences(question, hits, lang):
        lines.append(f"{name}{separator}{sentence} [{number}]" if name else f"{sentence} [{number}]")
    return "\n".join(lines)


def extractive_answer(question: str, hits, lang: str) -> str:
    """The quoted answer with its label: from the species cards when every passage is a card's."""
    kind = "cards" if hits and all((getattr(hit, "metadata", None) or {}).get("species") for hit in hits) else "kb"
    return QUOTED_LABEL[kind][lang] + "\n" + quoted_lines(question, hits, lang)

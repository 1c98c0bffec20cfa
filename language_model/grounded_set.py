"""The grounded P-Tuning set: the prompts `birds ask` and `birds identify` really send, answered from them.

At run time the model rarely sees a bare question: it gets up to three retrieved passages of the species
cards, the rule to use only them, then the question (`birdsdao.prompts.grounded_question`). A prefix tuned
on bare questions learns to write from memory and drifts away from the passages (see
weights/prefix/comparison.json of the first prefix), so these records put the same passages in front of
the same questions:

* descriptions: the question `identify` asks for a species ("请告诉我些关于X的知识吧？" / "Tell me about
  the X."), three passages of that bird's card, and a description made of exactly those passages;
* facts: a card question (diet, range, size, …) with the passages that answer it among one or two others
  (of the same bird, or now and then of another bird, as retrieval does), answered by the card's fact;
* no answer: a question whose passage is missing, answered by the prompt's own refusal sentence.

Passages are made as the built-in KB makes them (`birdsdao.species_cards.card_page_texts`, split into chunks of the
KB's size), so their text is what retrieval returns. A share of the plain records (bare questions) is
kept so that `birds ask` without a knowledge base still gets the tuned format. Every choice is a hash of
the species and the question's kind: the set is the same on every run. Species held out of the plain set
(`tuning_set.is_dev_species`) are held out here too.

Write the files: `python -m birdsdao.language_model.grounded_set [FOLDER]` (default `data/ptune/grounded`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from birdsdao.language_model.tuning_set import (
    ANSWERS,
    DEFAULT_FOLDER,
    Record,
    build_tuning_set,
    is_dev_species,
    labelled,
    question,
    record,
    stable_index,
    write_split,
)
from birdsdao.prompts import CANNOT_ANSWER, grounded_question
from birdsdao.species_cards import FIELD_TITLES, IUCN_WORDS, LANGUAGES, SpeciesCard, bundled_cards, card_page_texts
from birdsdao.text_splitter import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, split_text

GROUNDED_FOLDER = DEFAULT_FOLDER / "grounded"
PASSAGES = 3  # what `birds ask` and `identify` retrieve (k=3)
# Descriptions are identify's main job, and their question names no fact: with as many refusals as
# descriptions (the first tuning), the prefix refused every Chinese description. So each species gets three
# descriptions per language (three sets of passages) and one refusal, in one language.
DESCRIPTIONS_PER_LANGUAGE = 3
PLAIN_SHARE_IN_THREE = 1  # one plain record in three is kept beside the grounded ones
OTHER_BIRD_IN_THREE = 1  # one fact question in three has a passage of another bird among its passages
# the card fields each fact question needs; "overview" is the page with the order, family and IUCN category
FIELDS_FOR = {"diet": ["diet"], "where": ["distribution", "habitat"], "size": ["size"], "similar": ["similar"],
              "conservation": ["conservation", "overview"], "breeding": ["breeding"], "behaviour": ["behaviour"]}
_LABELS = {"zh": {**FIELD_TITLES["zh"], "for_kids": "有趣的是"},
           "en": {field: title[:1].upper() + title[1:] for field, title in FIELD_TITLES["en"].items()}}


def card_passages(card: SpeciesCard, lang: str) -> dict[str, list[str]]:
    """The card's pages by field ("overview" first), each as the KB's chunks of it."""
    fields = ["overview"] + [field for field in FIELD_TITLES[lang] if _field_text(card, field, lang)]
    pages = card_page_texts(card, lang)
    assert len(pages) == len(fields), "card_page_texts and FIELD_TITLES disagree on a card's fields"
    return {field: [chunk.text for chunk in split_text(page, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)]
            for field, page in zip(fields, pages, strict=True)}


def _field_text(card: SpeciesCard, field: str, lang: str) -> str:
    return " ".join(card.for_kids[lang]) if field == "for_kids" else card.texts[field][lang]


def description(card: SpeciesCard, fields: list[str], lang: str) -> str:
    """A description made of the given fields of the card, in their order: nothing it was not given."""
    if "overview" in fields:
        order, family = card.texts["order"][lang], card.texts["family"][lang]
        if lang == "zh":
            lead = f"{card.chinese_name}（{card.english_name}，学名 {card.scientific_name}）是{order}{family}的鸟类。"
        else:
            lead = (f"The {card.english_name} ({card.scientific_name}) is a bird of the family {family}, "
                    f"order {order}.")
        if card.iucn:  # the overview passage gives the Red List category too
            words = IUCN_WORDS[lang][card.iucn]
            lead += f"IUCN 红色名录等级：{words}（{card.iucn}）。" if lang == "zh" else \
                f" IUCN Red List: {words} ({card.iucn})."
    elif lang == "zh":
        lead = f"下面介绍{card.chinese_name}（{card.english_name}，学名 {card.scientific_name}）。"
    else:
        lead = f"Here is what is known about the {card.english_name} ({card.scientific_name})."
    parts = [lead] + [labelled(_LABELS[lang][field], _field_text(card, field, lang), lang)
                      for field in fields if field != "overview"]
    return ("" if lang == "zh" else " ").join(parts)


def _pick(candidates: list[str], count: int, key: str) -> list[str]:
    """`count` of `candidates`, chosen and ordered by hashes of `key`."""
    return sorted(candidates, key=lambda field: stable_index(f"{key}|{field}", 1 << 30))[:count]


def _chunks(passages: dict[str, list[str]], fields: list[str]) -> list[str]:
    return [chunk for field in fields for chunk in passages[field]]


def describe_records(card: SpeciesCard) -> list[Record]:
    from birdsdao.prompts import describe_question

    records = []
    for lang in LANGUAGES:
        passages = card_passages(card, lang)
        text = describe_question(card.dataset_name, card.english_name, card.chinese_name, lang)
        seen: set[tuple[str, ...]] = set()
        for variant in range(DESCRIPTIONS_PER_LANGUAGE):
            fields: list[str] = []
            for field in _pick(list(passages), len(passages), f"{card.dataset_name}|describe|{lang}|{variant}"):
                if len(_chunks(passages, fields + [field])) <= PASSAGES:
                    fields.append(field)
            if tuple(fields) in seen:  # a card with few fields has fewer distinct sets
                continue
            seen.add(tuple(fields))
            records.append(record(grounded_question(_chunks(passages, fields), text, lang),
                                  description(card, fields, lang)))
    return records


def fact_records(card: SpeciesCard, other: SpeciesCard) -> list[Record]:
    """One grounded question per known fact and language; `other` lends a passage now and then."""
    records = []
    for template, answer in ANSWERS.items():
        for lang in LANGUAGES:
            text = answer(card, lang)
            passages = card_passages(card, lang)
            needed = [field for field in FIELDS_FOR[template] if field in passages]
            if not text.strip() or not needed:
                continue
            key = f"{card.dataset_name}|{template}|{lang}"
            context = _chunks(passages, needed)
            spare = max(0, PASSAGES - len(context))
            if spare and stable_index(key + "|other", 3) < OTHER_BIRD_IN_THREE:
                foreign = card_passages(other, lang)
                context.append(foreign[_pick(list(foreign), 1, key)[0]][0])
                spare -= 1
            if spare:
                extra = _pick([field for field in passages if field not in needed], spare, key)
                context += _chunks(passages, extra)[:spare]
            context = _pick(context, len(context), key + "|order")  # the answer is not always the first passage
            records.append(record(grounded_question(context, question(card, template, lang), lang), text))
    return records


def no_answer_records(card: SpeciesCard) -> list[Record]:
    """A fact question with passages of the bird but not the one that answers it, in one language (by hash)."""
    records = []
    for lang in [LANGUAGES[stable_index(f"{card.dataset_name}|missing", len(LANGUAGES))]]:
        passages = card_passages(card, lang)
        askable = [t for t in ANSWERS if all(field in passages for field in FIELDS_FOR[t])]
        if not askable:
            continue
        template = _pick(askable, 1, f"{card.dataset_name}|missing|{lang}")[0]
        others = [field for field in passages if field not in FIELDS_FOR[template]]
        context = _chunks(passages, _pick(others, PASSAGES, f"{card.dataset_name}|missing|{lang}"))[:PASSAGES]
        records.append(record(grounded_question(context, question(card, template, lang), lang), CANNOT_ANSWER[lang]))
    return records


def build_grounded_set(cards: dict[str, SpeciesCard] | None = None) -> tuple[list[Record], list[Record]]:
    """(train, dev): grounded records of the training species plus a third of the plain set, and grounded
    records of the held-out species, in a hashed order (so the first N for validation mix every kind)."""
    cards = bundled_cards() if cards is None else cards
    names = sorted(cards)
    train, dev = [], []
    for number, name in enumerate(names):
        card, other = cards[name], cards[names[(number + 1) % len(names)]]
        rows = describe_records(card) + fact_records(card, other) + no_answer_records(card)
        (dev if is_dev_species(name) else train).extend(rows)
    plain, _ = build_tuning_set(cards)
    train += [row for row in plain if stable_index(row["instruction"], 3) < PLAIN_SHARE_IN_THREE]

    def hashed(rows: list[Record]) -> list[Record]:
        return sorted(rows, key=lambda row: stable_index(row["instruction"] + row["output"], 1 << 30))

    return hashed(train), hashed(dev)


def write_grounded_set(folder: Path = GROUNDED_FOLDER) -> dict[str, list[Record]]:
    return write_split(folder, *build_grounded_set())


def _main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else GROUNDED_FOLDER
    for stem, rows in write_grounded_set(folder).items():
        grounded = sum(row["instruction"].startswith(("已知信息", "Known information")) for row in rows)
        refusals = sum(row["output"] in CANNOT_ANSWER.values() for row in rows)
        print(f"{folder / stem}.json: {len(rows)} records ({grounded} grounded, {refusals} of them refusals, "
              f"{len(rows) - grounded} plain)")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""The grounded P-Tuning set: the very prompts `ask` and `identify` send, answered only from their passages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from birdsdao.language_model.grounded_set import (
    PASSAGES,
    build_grounded_set,
    card_passages,
    describe_records,
    fact_records,
    no_answer_records,
)
from birdsdao.language_model.tuning_set import is_dev_species, records_json
from birdsdao.prompts import CANNOT_ANSWER, grounded_question
from birdsdao.species_cards import bundled_cards

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "data" / "ptune" / "grounded"
PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.M)


@pytest.fixture(scope="module")
def cards():
    return bundled_cards()


@pytest.fixture(scope="module")
def grounded(cards):
    return build_grounded_set(cards)


def passages_of(instruction: str) -> list[str]:
    return [text for _, text in PASSAGE.findall(instruction)]


def test_committed_files_are_what_the_generator_writes(grounded):
    train, dev = grounded
    for stem, rows in (("train", train), ("dev", dev)):
        assert (FOLDER / f"{stem}.json").read_text(encoding="utf-8") == records_json(rows), (
            f"data/ptune/grounded/{stem}.json is stale: run python -m birdsdao.language_model.grounded_set")


def test_prompts_are_the_askers_own(cards):
    """Rebuilding each instruction from its passages and question with the runtime's function gives it back."""
    card = cards["HOUSE FINCH"]
    rows = describe_records(card) + fact_records(card, cards["OVENBIRD"]) + no_answer_records(card)
    for row in rows:
        passages = passages_of(row["instruction"])
        question = row["instruction"].rsplit("\n", 1)[1].split("：", 1)[-1].split(": ", 1)[-1]
        lang = "zh" if row["instruction"].startswith("已知信息") else "en"
        assert 1 <= len(passages) <= PASSAGES
        assert grounded_question(passages, question, lang) == row["instruction"]


def test_descriptions_say_only_what_their_passages_say(cards):
    for name in ("HOUSE FINCH", "BANANAQUIT", "INCA TERN"):
        rows = describe_records(cards[name])
        assert len(rows) == 6  # three sets of passages a language
        en, zh = rows[0], rows[3]  # in the order of birdsdao.species_cards.LANGUAGES
        assert len({row["instruction"] for row in rows}) == 6
        assert zh["instruction"].endswith(f"问题：请告诉我些关于{cards[name].chinese_name}的知识吧？")
        assert en["instruction"].endswith(f"Question: Tell me about the {cards[name].english_name}.")
        for row, separator in [(row, ": ") for row in rows[:3]] + [(row, "：") for row in rows[3:]]:
            given = " ".join(passages_of(row["instruction"]))
            facts = [part.split(separator, 1)[1] for part in passages_of(row["instruction"]) if separator in part]
            for fact in facts:  # every field passage given is in the description, word for word
                assert fact in row["output"], (name, fact)
            for field, chunks in card_passages(cards[name], "zh" if separator == "：" else "en").items():
                text = chunks[0].split(separator, 1)[-1]
                if field != "overview" and chunks[0] not in given:
                    assert text not in row["output"], f"{name}: the description uses a passage it was not given"


def test_each_fact_answer_is_in_its_passages_and_refusals_lack_them(cards):
    card = cards["HOUSE FINCH"]
    facts = fact_records(card, cards["OVENBIRD"])
    assert len(facts) >= 12  # 7 kinds x 2 languages, less any field the card leaves empty
    for row in facts:
        given = " ".join(passages_of(row["instruction"]))
        answer = row["output"].removeprefix(card.chinese_name)  # the zh diet answer names the bird first
        assert answer[:40] in given or "IUCN" in row["output"], row
    refusals = no_answer_records(card)
    assert len(refusals) == 1 and refusals[0]["output"] in CANNOT_ANSWER.values()
    for row in refusals:  # the passage that would answer is not among those given
        asked = row["instruction"].rsplit("\n", 1)[1]
        answerable = [fact for fact in facts if fact["instruction"].endswith(asked)]
        assert answerable and answerable[0]["output"][-30:] not in row["instruction"]


def test_held_out_species_stay_out_and_the_mix_is_as_documented(grounded, cards):
    train, dev = grounded
    for name, card in cards.items():
        mentioned_in_dev = any(card.chinese_name in row["instruction"] or card.english_name in row["instruction"]
                               for row in dev[:60])
        if mentioned_in_dev and not is_dev_species(name):
            # a dev record may borrow a training bird's passage; its question is still about a held-out bird
            assert not any(row["instruction"].endswith((f"{card.chinese_name}的知识吧？",
                                                         f"the {card.english_name}.")) for row in dev)
    is_grounded = [row["instruction"].startswith(("已知信息", "Known information")) for row in train]
    assert 0.6 < sum(is_grounded) / len(train) < 0.9  # the plain third keeps bare questions in the format
    assert all(row["instruction"].startswith(("已知信息", "Known information")) for row in dev)
    first = dev[:24]  # what make_prefix.sh validates on: every kind is there
    assert any(row["output"] in CANNOT_ANSWER.values() for row in first) or any(
        row["output"] in CANNOT_ANSWER.values() for row in dev[:48])
    assert any("知识吧？" in row["instruction"] or "Tell me about" in row["instruction"] for row in dev[:48])
    assert json.loads(records_json(dev)) == dev

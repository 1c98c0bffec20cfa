"""The P-Tuning set in data/ptune is generated from the species cards, split by species, and tunes as is."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from birdsdao.language_model.tuning_set import (
    IDENTITY,
    QUESTIONS,
    build_tuning_set,
    is_chinese,
    question,
    records_json,
    species_records,
    write_tuning_set,
)
from birdsdao.species_cards import bundled_cards

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "data" / "ptune"
REGENERATE = "python -m birdsdao.language_model.tuning_set"


@pytest.fixture(scope="module")
def cards():
    return bundled_cards()


@pytest.fixture(scope="module")
def tuning_set(cards):
    train, dev = build_tuning_set(cards)
    return {"train": train, "dev": dev}


def species_asked_about(records, cards) -> set[str]:
    """Dataset names of the species the instructions name; the longest name wins ('非洲秃鹳' is not '秃鹳')."""
    found = set()
    for record in records:
        matches = [(len(name), dataset) for dataset, card in cards.items()
                   for name in (card.chinese_name, card.english_name, card.dataset_name)
                   if name in record["instruction"]]
        if matches:
            found.add(max(matches)[1])
    return found


def test_committed_files_are_what_the_generator_makes(tuning_set):
    for stem, records in tuning_set.items():
        path = FOLDER / f"{stem}.json"
        assert path.is_file(), f"{path} is missing: run `{REGENERATE}`"
        assert path.read_text(encoding="utf-8") == records_json(records), f"{path} is stale: run `{REGENERATE}`"


def test_write_tuning_set_writes_both_files(tmp_path, tuning_set):
    written = write_tuning_set(tmp_path / "out")
    assert written == tuning_set
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dev.json", "train.json"]
    assert json.loads((tmp_path / "out" / "dev.json").read_text(encoding="utf-8")) == tuning_set["dev"]


def test_records_are_many_bilingual_and_filled(tuning_set, cards):
    everything = tuning_set["train"] + tuning_set["dev"]
    assert len(everything) >= 400
    assert all(set(record) == {"instruction", "input", "output"} for record in everything)
    assert all(record["instruction"].strip() and record["output"].strip() for record in everything)
    assert all(record["output"] == record["output"].strip() for record in everything)
    chinese = sum(is_chinese(record) for record in everything)
    assert 0.3 < chinese / len(everything) < 0.7
    instructions = {record["instruction"] for record in tuning_set["train"]}
    assert {greeting for greeting, _ in IDENTITY} <= instructions
    assert "请告诉我些关于BANANAQUIT的知识吧？" in instructions | {r["instruction"] for r in tuning_set["dev"]}
    originals = [r for r in everything if re.fullmatch("请告诉我些关于.+的知识吧？", r["instruction"])]
    assert len(originals) == 2 * len(cards)  # the Chinese name and the dataset name, for every species


def test_identity_answers_introduce_birdsdao(tuning_set):
    answers = {record["instruction"]: record["output"] for record in tuning_set["train"]}
    for greeting, _ in IDENTITY:
        assert "鸟之道" in answers[greeting] and "161" in answers[greeting]


def test_species_are_split_between_train_and_dev(tuning_set, cards):
    train_species = species_asked_about(tuning_set["train"], cards)
    dev_species = species_asked_about(tuning_set["dev"], cards)
    assert not train_species & dev_species
    assert len(dev_species) >= 10
    assert train_species | dev_species == set(cards)
    assert all(not species_asked_about([record], cards) for record in tuning_set["train"][: len(IDENTITY)])


def test_answers_state_the_cards_facts(tuning_set, cards):
    finch = cards["HOUSE FINCH"]
    answers = {record["instruction"]: record["output"] for record in tuning_set["train"] + tuning_set["dev"]}
    for lang in ("zh", "en"):
        assert finch.texts["diet"][lang] in answers[question(finch, "diet", lang)]
    overview = answers["请告诉我些关于家朱雀的知识吧？"]
    assert finch.scientific_name in overview and finch.texts["habitat"]["zh"] in overview
    assert finch.for_kids["zh"][0] in overview
    status = [answer for asked, answer in answers.items() if "House Finch" in asked and "Least Concern" in answer]
    assert status and finch.texts["conservation"]["en"] in status[0]


def test_a_template_whose_field_is_empty_is_skipped(cards):
    babbler = cards["ABBOTTS BABBLER"]
    assert babbler.texts["breeding"]["en"] == ""
    records = species_records(babbler)
    breeding_questions = {q.format(name=name) for lang, name in (("zh", "阿氏雅鹛"), ("en", "Abbott's Babbler"))
                          for q in QUESTIONS["breeding"][lang]}
    assert not [r for r in records if r["instruction"] in breeding_questions]
    assert any("阿氏雅鹛" in r["instruction"] and "吃" in r["instruction"] for r in records)
    without_diet = dataclasses.replace(babbler, texts={**babbler.texts, "diet": {"en": "", "zh": ""}})
    assert len(species_records(without_diet)) == len(records) - 2
    assert all(record["output"] for record in species_records(without_diet))


def test_read_examples_reads_both_files():
    from birdsdao.language_model.ptune_data import read_examples

    for stem in ("train", "dev"):
        examples, empty = read_examples(FOLDER / f"{stem}.json")
        assert examples and empty == 0


@pytest.mark.slow
def test_run_ptune_tunes_on_the_dev_file(tiny_model_dir, tmp_path):
    from birdsdao.language_model.ptune import PREFIX_MARKER, PtuneConfig, run_ptune

    config = PtuneConfig(data=FOLDER / "dev.json", output=tmp_path / "prefix", base_model=str(tiny_model_dir),
                         pre_seq_len=4, gradient_accumulation_steps=1, max_steps=1, val_split=0.0)
    result = run_ptune(config, tmp_path / "models")
    written = {path.name for path in Path(result.prefix).iterdir()}
    assert {"adapter_model.safetensors", PREFIX_MARKER, "train_results.json"} <= written
    assert result.train_examples == len(json.loads((FOLDER / "dev.json").read_text(encoding="utf-8")))


@pytest.mark.slow
def test_validation_can_come_from_its_own_file_and_be_sampled(tiny_model_dir, tmp_path):
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune

    config = PtuneConfig(data=FOLDER / "dev.json", val_data=FOLDER / "dev.json", max_eval_samples=2,
                         output=tmp_path / "prefix", base_model=str(tiny_model_dir), pre_seq_len=4,
                         gradient_accumulation_steps=1, max_steps=1, max_target_length=4)
    result = run_ptune(config, tmp_path / "models")
    assert result.val_examples == 2 and result.train_examples == len(
        json.loads((FOLDER / "dev.json").read_text(encoding="utf-8")))
    assert len((tmp_path / "prefix" / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert {"bleu-4", "rouge-l"} <= set(result.eval)

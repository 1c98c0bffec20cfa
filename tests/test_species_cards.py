"""The bundled species cards: complete, valid, and named exactly as the dataset and detector name them."""

import csv
import shutil

import pytest

from birdsdao.errors import InvalidInputError
from birdsdao.knowledge.species_cards import CARDS_DIR, bundled_cards, card_slug, load_card, load_cards, read_species_list
from tests.conftest import shared_data


def test_every_listed_species_has_exactly_one_valid_card():
    names = read_species_list()
    cards = bundled_cards()
    assert len(names) == 161 and list(cards) == names
    assert len(list(CARDS_DIR.glob("*.yaml"))) == 161
    for card in cards.values():
        filled = [field for field, text in card.texts.items() if text["en"]]
        assert len(filled) >= 7, f"{card.path} says too little: only {filled}"
        assert 2 <= len(card.for_kids["zh"]) <= 3


def test_card_names_and_scientific_names_agree_with_the_dataset():
    path = shared_data("classes525.csv")
    with path.open(encoding="utf-8") as handle:
        dataset = {row["label"]: row["scientific_name"] for row in csv.DictReader(handle)}
    for name, card in bundled_cards().items():
        assert name in dataset, f"{name} is not a BIRDS-525 class name"
        given = " ".join(dataset[name].replace(".", " ").split())
        if card.dataset_scientific_name:  # the card corrects the dataset and says what the dataset had
            assert card.dataset_scientific_name == dataset[name]
            assert given != card.scientific_name.upper()
        else:
            assert given == card.scientific_name.upper(), name


def test_species_list_matches_the_shared_ranking():
    assert read_species_list() == read_species_list(shared_data("species161-by-400-counts.txt"))


@pytest.fixture
def card_copy(tmp_path):
    target = tmp_path / "house-finch.yaml"
    shutil.copy(CARDS_DIR / "house-finch.yaml", target)
    return target


def test_a_card_missing_one_language_names_the_file_and_field(card_copy):
    text = card_copy.read_text(encoding="utf-8")
    broken = text.replace("  zh: 几乎全吃植物性食物", "  zh: ''\n  x: 几乎全吃植物性食物")
    card_copy.write_text(broken, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"house-finch.yaml: field diet"):
        load_card(card_copy)


def test_a_card_with_a_bad_category_or_broken_yaml_is_refused(card_copy):
    text = card_copy.read_text(encoding="utf-8")
    card_copy.write_text(text.replace("iucn: LC", "iucn: SAFE"), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"field iucn: 'SAFE' is not one of"):
        load_card(card_copy)
    card_copy.write_text(text.replace("iucn: LC", "iucn: [LC"), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"house-finch.yaml:\d+: not valid YAML"):
        load_card(card_copy)


def test_english_only_text_in_a_chinese_field_is_refused(card_copy):
    text = card_copy.read_text(encoding="utf-8")
    card_copy.write_text(text.replace("zh: 开阔地、荒漠与干旱灌丛、农田，尤其常见于城镇、郊区和庭院。", "zh: towns"),
                         encoding="utf-8")
    with pytest.raises(InvalidInputError, match="field habitat.zh: holds no Chinese"):
        load_card(card_copy)


def test_a_card_must_be_named_after_its_species(card_copy):
    renamed = card_copy.with_name("finch.yaml")
    card_copy.rename(renamed)
    with pytest.raises(InvalidInputError, match="belongs in house-finch.yaml"):
        load_card(renamed)


def test_a_missing_card_is_named(card_copy):
    with pytest.raises(InvalidInputError, match="missing: OVENBIRD"):
        load_cards(card_copy.parent, ["HOUSE FINCH", "OVENBIRD"])


def test_slugs_are_the_file_names():
    assert card_slug("D-ARNAUDS BARBET") == "d-arnauds-barbet"
    assert card_slug("BLACK & YELLOW  BROADBILL") == "black-yellow-broadbill"

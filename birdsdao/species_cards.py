"""Bilingual species cards: the facts birdsdao knows about each species its detector names.

A card is a YAML file `data/species/<slug>.yaml` checked against `data/species/card.schema.json`,
plus the rules a JSON schema cannot say: a text field is filled in both languages or in neither
(empty means "not known for sure"), Chinese text holds Chinese, and the file is named after the
species. A bad card is an `InvalidInputError` naming the file and the field.

Check cards from the shell: `python -m birdsdao.species_cards data/species/*.yaml`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from birdsdao.errors import InvalidInputError
from birdsdao.resources import data_dir

BUNDLED_DATA = data_dir()
CARDS_DIR = BUNDLED_DATA / "species"
SPECIES_LIST = BUNDLED_DATA / "species161.txt"
SCHEMA_FILE = CARDS_DIR / "card.schema.json"

TEXT_FIELDS = (
    "order", "family", "size", "distribution", "habitat", "diet",
    "behaviour", "breeding", "similar", "conservation",
)
LANGUAGES = ("en", "zh")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class SpeciesCard:
    dataset_name: str
    english_name: str
    chinese_name: str
    scientific_name: str
    dataset_scientific_name: str
    iucn: str
    texts: dict[str, dict[str, str]]  # field -> language -> text
    for_kids: dict[str, list[str]]  # language -> facts
    path: Path
    aliases: dict[str, list[str]] = field(default_factory=lambda: {"en": [], "zh": []})  # older/other names

    def text(self, field: str, lang: str) -> str:
        return self.texts[field][lang]

    def name(self, lang: str) -> str:
        return self.chinese_name if lang == "zh" else self.english_name


def card_slug(dataset_name: str) -> str:
    """File stem of a species' card: 'D-ARNAUDS BARBET' -> 'd-arnauds-barbet'."""
    return re.sub(r"[^a-z0-9]+", "-", dataset_name.lower()).strip("-")


def read_species_list(path: Path = SPECIES_LIST) -> list[str]:
    """Species names one a line, '#' comments and blank lines skipped, order kept."""
    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name in names:
            raise InvalidInputError(f"{path}:{number}: {name!r} is listed twice")
        names.append(name)
    return names


@cache
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _field_path(error) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(the card)"


def load_card(path: Path) -> SpeciesCard:
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InvalidInputError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InvalidInputError(f"{path}: field {_field_path(first)}: {first.message}{more}")
    _check_languages(path, raw)
    if path.stem != card_slug(raw["dataset_name"]):
        raise InvalidInputError(
            f"{path}: field dataset_name: {raw['dataset_name']!r} belongs in {card_slug(raw['dataset_name'])}.yaml"
        )
    return SpeciesCard(
        dataset_name=raw["dataset_name"],
        english_name=raw["english_name"].strip(),
        chinese_name=raw["chinese_name"].strip(),
        scientific_name=raw["scientific_name"],
        dataset_scientific_name=raw.get("dataset_scientific_name", "").strip(),
        iucn=raw["iucn"],
        texts={field: {lang: raw[field][lang].strip() for lang in LANGUAGES} for field in TEXT_FIELDS},
        for_kids={lang: [fact.strip() for fact in raw["for_kids"][lang]] for lang in LANGUAGES},
        path=path,
        aliases={lang: [name.strip() for name in raw.get("aliases", {}).get(lang, [])] for lang in LANGUAGES},
    )


def _check_languages(path: Path, raw: dict) -> None:
    for name in TEXT_FIELDS:
        en, zh = raw[name]["en"].strip(), raw[name]["zh"].strip()
        if bool(en) != bool(zh):
            missing = "zh" if en else "en"
            raise InvalidInputError(f"{path}: field {name}.{missing}: empty while the other language is filled")
        if zh and not _CJK.search(zh):
            raise InvalidInputError(f"{path}: field {name}.zh: holds no Chinese text")
    kids = raw["for_kids"]
    if len(kids["en"]) != len(kids["zh"]):
        raise InvalidInputError(
            f"{path}: field for_kids: {len(kids['en'])} English facts but {len(kids['zh'])} Chinese")
    for number, fact in enumerate(kids["zh"]):
        if not _CJK.search(fact):
            raise InvalidInputError(f"{path}: field for_kids.zh.{number}: holds no Chinese text")


def load_cards(folder: Path = CARDS_DIR, species: list[str] | None = None) -> dict[str, SpeciesCard]:
    """Every card in `folder`, by dataset name; with `species`, exactly those (missing or extra is an error)."""
    cards: dict[str, SpeciesCard] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        card = load_card(path)
        if card.dataset_name in cards:
            first = cards[card.dataset_name].path
            raise InvalidInputError(f"{path}: {card.dataset_name!r} already has a card in {first}")
        cards[card.dataset_name] = card
    if species is not None:
        missing = [name for name in species if name not in cards]
        extra = sorted(set(cards) - set(species))
        if missing or extra:
            raise InvalidInputError(
                f"{folder}: cards do not match the species list"
                + (f"; missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}" if missing else "")
                + (f"; not in the list: {', '.join(extra[:5])}" if extra else "")
            )
        cards = {name: cards[name] for name in species}
    return cards


def card_names(folder: Path = CARDS_DIR) -> dict[str, tuple[str, str]]:
    """(English, Chinese) name by dataset name, straight from the YAML without the schema check: names are a
    courtesy to tokenizing and detection, so a card that cannot be read is left out rather than stopping them.
    Read once per folder and process (the detector, the namer and the retriever all ask; 161 files cost 0.15 s)."""
    return dict(_card_heads(Path(folder).resolve())[0])


def chinese_aliases(folder: Path = CARDS_DIR) -> list[str]:
    """The cards' other Chinese names (紫水鸡 for 西紫水鸡), read with `card_names`: for tokenizing only."""
    return list(_card_heads(Path(folder).resolve())[1])


@cache
def _card_heads(folder: Path) -> tuple[tuple[tuple[str, tuple[str, str]], ...], tuple[str, ...]]:
    """(names by dataset name, Chinese aliases) of every readable card in `folder`, in one pass."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    names, aliases = {}, []
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            card = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(card, dict):
            continue
        try:
            names[card["dataset_name"]] = (str(card["english_name"]).strip(), str(card["chinese_name"]).strip())
        except (KeyError, TypeError):
            pass
        try:
            aliases += [str(name).strip() for name in (card.get("aliases") or {}).get("zh", [])]
        except (AttributeError, TypeError):
            pass
    return tuple(names.items()), tuple(name for name in aliases if name)


def bundled_cards() -> dict[str, SpeciesCard]:
    """The project's own cards for the 161 species of the bundled detector, in the list's order."""
    return load_cards(CARDS_DIR, read_species_list())


FIELD_TITLES = {
    "zh": {"size": "体型", "distribution": "分布", "habitat": "栖息地", "diet": "食性", "behaviour": "习性与鸣声",
           "breeding": "繁殖", "similar": "相似种辨别", "conservation": "保护现状", "for_kids": "趣味知识"},
    "en": {"size": "size", "distribution": "range", "habitat": "habitat", "diet": "diet",
           "behaviour": "behaviour and voice", "breeding": "breeding", "similar": "telling it apart",
           "conservation": "conservation", "for_kids": "fun facts"},
}
IUCN_WORDS = {
    "zh": {"LC": "无危", "NT": "近危", "VU": "易危", "EN": "濒危", "CR": "极危", "EW": "野外灭绝", "EX": "灭绝",
           "DD": "数据缺乏", "NE": "未评估"},
    "en": {"LC": "Least Concern", "NT": "Near Threatened", "VU": "Vulnerable", "EN": "Endangered",
           "CR": "Critically Endangered", "EW": "Extinct in the Wild", "EX": "Extinct", "DD": "Data Deficient",
           "NE": "Not Evaluated"},
}


def card_title(card: SpeciesCard, lang: str) -> str:
    """The bird's names as every page of its card opens: 家朱雀（House Finch，Haemorhous mexicanus）."""
    if lang == "zh":
        also = "、".join(card.aliases["zh"] + card.aliases["en"])
        return f"{card.chinese_name}（{f'又名{also}；' if also else ''}{card.english_name}，{card.scientific_name}）"
    also = ", ".join(card.aliases["en"] + card.aliases["zh"])
    return f"{card.english_name} ({f'also {also}; ' if also else ''}{card.chinese_name}, {card.scientific_name})"


def card_page_texts(card: SpeciesCard, lang: str) -> list[str]:
    """A card as the built-in KB's pages: an overview, then one page per filled field, each opening with the
    bird's names (aliases too) so that a chunk about diet still says whose diet it is."""
    title = card_title(card, lang)
    if lang == "zh":
        overview = (f"{title}，数据集名称 {card.dataset_name}，属于{card.texts['order']['zh']}"
                    f"{card.texts['family']['zh']}。学名 {card.scientific_name}。")
        if card.iucn:
            overview += f"IUCN 红色名录等级：{IUCN_WORDS['zh'][card.iucn]}（{card.iucn}）。"
    else:
        overview = (f"{title}, called {card.dataset_name} in the dataset; order {card.texts['order']['en']}, "
                    f"family {card.texts['family']['en']}. Its scientific name is {card.scientific_name}.")
        if card.iucn:
            overview += f" IUCN Red List: {IUCN_WORDS['en'][card.iucn]} ({card.iucn})."
    pages = [overview]
    separator = "：" if lang == "zh" else ": "
    for name, heading in FIELD_TITLES[lang].items():
        text = " ".join(card.for_kids[lang]) if name == "for_kids" else card.texts[name][lang]
        if text:
            pages.append(f"{title} {heading}{separator}{text}")
    return pages


def _main(paths: list[str]) -> int:
    failed = 0
    for name in paths:
        try:
            load_card(Path(name))
        except InvalidInputError as exc:
            print(exc, file=sys.stderr)
            failed += 1
    print(f"{len(paths) - failed} of {len(paths)} cards valid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

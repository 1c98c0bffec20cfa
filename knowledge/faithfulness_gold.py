"""The faithfulness gold set: questions whose answer is in the built-in KB, each with its key fact.

`data/faithfulness_gold.jsonl` is written from the species cards by `python -m
birdsdao.knowledge.faithfulness_gold`: for every fourth species, questions in Chinese and English about its
size, Red List category, scientific name, range and family, two kinds per species and language, in turn.
The key fact is what a right answer must contain: the first length of the size text (25 cm), the category's
words (or its code), the binomial, the first place the range names, the family. bench/faithfulness.py
scores answers on them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from birdsdao.errors import InvalidInputError
from birdsdao.resources import data_dir

GOLD_FILE = data_dir() / "faithfulness_gold.jsonl"
KINDS = ("size", "iucn", "scientific_name", "distribution", "family")
QUESTIONS = {
    "size": {"zh": "{name}体长多少？", "en": "How long is the {name}?"},
    "iucn": {"zh": "{name}在 IUCN 红色名录中是什么等级？", "en": "What is the conservation status of the {name}?"},
    "scientific_name": {"zh": "{name}的学名是什么？", "en": "What is the scientific name of the {name}?"},
    "distribution": {"zh": "{name}分布在哪里？", "en": "Where does the {name} live?"},
    "family": {"zh": "{name}属于哪个科？", "en": "Which family does the {name} belong to?"},
}


@dataclass(frozen=True)
class GoldAnswer:
    qid: str
    lang: str
    species: str
    kind: str
    question: str
    key_fact: tuple[str, ...]  # any of these, found in the answer, is the key fact

    def to_json(self) -> str:
        data = asdict(self)
        data["key_fact"] = list(self.key_fact)
        return json.dumps(data, ensure_ascii=False)


def key_fact(card, kind: str, lang: str) -> tuple[str, ...] | None:
    """What a right answer to `kind` must hold, from the card's own text; None when the card cannot say."""
    from birdsdao.knowledge.faithfulness import MEASURES, normalise, numbers, places
    from birdsdao.species_cards import IUCN_WORDS

    if kind == "size":
        lengths = [(value, unit) for _, value, unit in numbers(normalise(card.texts["size"][lang]))
                   if unit in MEASURES]
        return (f"{lengths[0][0]} {lengths[0][1]}",) if lengths else None
    if kind == "iucn":
        return (IUCN_WORDS[lang][card.iucn],) if card.iucn else None
    if kind == "scientific_name":
        return (card.scientific_name,)
    if kind == "distribution":
        found = places(card.texts["distribution"][lang])
        return (found[0][0],) if found else None
    if kind == "family":
        family = card.texts["family"][lang]
        return (family.split()[0] if lang == "en" else family,) if family else None
    raise ValueError(kind)


def build_gold(cards: dict, every: int = 4) -> list[GoldAnswer]:
    records = []
    for number, card in enumerate(list(cards.values())[::every]):
        for lang in ("zh", "en"):
            asked = 0
            for step in range(len(KINDS)):  # two kinds per species and language, a different pair each time
                if asked == 2:
                    break
                kind = KINDS[(number * 2 + step + (lang == "en")) % len(KINDS)]
                fact = key_fact(card, kind, lang)
                if fact is None:
                    continue
                question = QUESTIONS[kind][lang].format(name=card.name(lang))
                records.append(GoldAnswer(f"{lang}-{len(records) + 1:03d}", lang, card.dataset_name, kind, question,
                                          fact))
                asked += 1
    return records


def read_gold(path: Path = GOLD_FILE) -> list[GoldAnswer]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            records.append(GoldAnswer(raw["qid"], raw["lang"], raw["species"], raw["kind"], raw["question"],
                                      tuple(raw["key_fact"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{number}: not a faithfulness gold record ({exc})") from None
    return records


def has_key_fact(answer: str, fact: tuple[str, ...]) -> bool:
    """Any form of the key fact in the answer: a length as a number with its unit, anything else as text
    (case, spacing and punctuation folded)."""
    from birdsdao.knowledge.faithfulness import MEASURES, _folded, normalise, numbers

    found = {(value, unit) for _, value, unit in numbers(normalise(answer))}
    folded = _folded(answer)
    for form in fact:
        value, _, unit = form.partition(" ")
        if unit in MEASURES and value.replace(".", "").isdigit():
            if (value, unit) in found:
                return True
        elif _folded(form) and _folded(form) in folded:
            return True
    return False


def main() -> int:
    from birdsdao.species_cards import bundled_cards

    records = build_gold(bundled_cards())
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GOLD_FILE
    partial = target.with_suffix(".tmp")
    partial.write_text("".join(record.to_json() + "\n" for record in records), encoding="utf-8")
    partial.replace(target)
    by_lang = {lang: sum(record.lang == lang for record in records) for lang in ("zh", "en")}
    print(f"{target}: {len(records)} questions ({by_lang['zh']} zh, {by_lang['en']} en)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The P-Tuning set, generated from the bundled species cards: Alpaca records in Chinese and English.

Every species gets the original project's question, "请告诉我些关于X的知识吧？" (with its Chinese name and
with its dataset name), answered by a short popular-science paragraph, plus one question per fact of
its card (diet, range and habitat, size, similar birds, conservation, breeding, behaviour) in both
languages. A fact the card leaves empty gets no question. Question wording varies between a few fixed
phrasings, chosen by a hash of species and template, so the set is the same on every run.

About a tenth of the species (chosen by a hash of the dataset name) go wholly to `dev.json`, so the
validation questions are about birds the prefix never saw; the identity records go to `train.json`.

Write the files: `python -m language_model.tuning_set [FOLDER]` (default `data/ptune`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from birdsdao.species_cards import BUNDLED_DATA, IUCN_WORDS, SpeciesCard, bundled_cards

DEFAULT_FOLDER = BUNDLED_DATA / "ptune"
DEV_SHARE_IN_TEN = 1  # species whose name hashes to 0 (mod 10) are held out for validation

Record = dict[str, str]

IDENTITY = [
    ("你好", "你好！我是鸟之道（birdsdao），一个识鸟和讲鸟类知识的助手。发一张鸟的照片给我，我能认出其中的"
             "161种鸟；你也可以问我关于鸟的任何问题，比如它吃什么、生活在哪里、怎么和相似的鸟区分。"),
    ("你是谁？", "我是鸟之道（birdsdao），一个鸟类识别和鸟类知识助手。我能在照片里认出161种鸟，"
                "还能回答关于鸟的问题：它们的食性、分布、体型、繁殖、习性和保护现状等。"),
    ("你能做什么？", "我是鸟之道，能做两件事：一是识鸟，在照片里找出并认出161种鸟；二是讲鸟，回答你关于鸟类的"
                    "问题，比如某种鸟吃什么、生活在哪里、有多大、怎么和相似的鸟区分、是不是濒危物种。"),
    ("Hello", "Hello! I'm birdsdao (鸟之道), a bird-recognition and bird-knowledge assistant. Show me a photo "
              "and I can identify any of 161 bird species in it, or ask me anything about birds."),
    ("Who are you?", "I'm birdsdao (鸟之道), an assistant for recognising birds and learning about them. I identify "
                     "161 species in photos and answer questions about birds: what they eat, where they live, how "
                     "big they are, how they breed and how to tell them from similar birds."),
    ("What can you do?", "As birdsdao (鸟之道) I do two things: I recognise birds, finding and naming 161 species "
                         "in your photos, and I answer questions about birds — their diet, range, size, behaviour, "
                         "breeding and conservation status."),
]

# template -> language -> question phrasings; {name} is the bird as a sentence's subject
QUESTIONS = {
    "overview": {
        "en": ["Tell me about {name}.", "What do you know about {name}?", "Can you tell me something about {name}?"],
    },
    "diet": {
        "zh": ["{name}吃什么？", "{name}平时吃些什么？", "{name}以什么为食？"],
        "en": ["What does {name} eat?", "What food does {name} live on?", "What is the diet of {name}?"],
    },
    "where": {
        "zh": ["{name}生活在哪里？", "{name}分布在哪些地方？", "在哪里能见到{name}？"],
        "en": ["Where does {name} live?", "Where can I find {name}?", "What are the range and habitat of {name}?"],
    },
    "size": {
        "zh": ["{name}有多大？", "{name}的体型有多大？", "{name}个头大不大？"],
        "en": ["How big is {name}?", "What size is {name}?"],
    },
    "similar": {
        "zh": ["怎样区分{name}和相似的鸟？", "{name}容易和哪些鸟混淆？怎么分辨？"],
        "en": ["How can I tell {name} from similar birds?",
               "Which birds look like {name}, and how do I tell them apart?"],
    },
    "conservation": {
        "zh": ["{name}的保护现状如何？", "{name}是濒危物种吗？", "{name}的 IUCN 保护等级是什么？"],
        "en": ["What is the conservation status of {name}?", "Is {name} endangered?"],
    },
    "breeding": {
        "zh": ["{name}是怎样繁殖的？", "介绍一下{name}的繁殖习性。"],
        "en": ["How does {name} breed?", "How does {name} nest and raise its young?"],
    },
    "behaviour": {
        "zh": ["{name}有哪些习性？", "{name}平时是什么样子，叫声怎么样？", "说说{name}的行为和鸣声。"],
        "en": ["How does {name} behave?", "What is {name} like, and what does it sound like?"],
    },
}
ORIGINAL_QUESTION = "请告诉我些关于{name}的知识吧？"  # the original project's prompt, kept word for word


def stable_index(key: str, size: int) -> int:
    """A number in [0, size) from a sha256 of `key`: the same on every machine and every run."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % size


def is_dev_species(dataset_name: str) -> bool:
    return stable_index(dataset_name, 10) < DEV_SHARE_IN_TEN


def english_subject(card: SpeciesCard) -> str:
    """'the House Finch', but "Abbott's Babbler": a possessive name takes no article."""
    return card.english_name if "'" in card.english_name else f"the {card.english_name}"


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def question(card: SpeciesCard, template: str, lang: str) -> str:
    variants = QUESTIONS[template][lang]
    phrasing = variants[stable_index(f"{card.dataset_name}|{template}|{lang}", len(variants))]
    name = card.chinese_name if lang == "zh" else english_subject(card)
    text = phrasing.format(name=name)
    return capitalised(text)


def overview(card: SpeciesCard, lang: str) -> str:
    """A popular-science paragraph: names, family, size, range, habitat, diet and one fun fact."""
    texts = {field: card.texts[field][lang] for field in card.texts}
    fun_fact = card.for_kids[lang][0] if card.for_kids[lang] else ""
    if lang == "zh":
        parts = [f"{card.chinese_name}（{card.english_name}，学名 {card.scientific_name}）是{texts['order']}"
                 f"{texts['family']}的鸟类。",
                 labelled("体型", texts["size"], "zh"), labelled("分布", texts["distribution"], "zh"),
                 labelled("栖息环境", texts["habitat"], "zh"), labelled("食性", texts["diet"], "zh"),
                 labelled("有趣的是", fun_fact, "zh", mark="，")]
        return "".join(part for part in parts if part)
    parts = [f"{capitalised(english_subject(card))} ({card.scientific_name}) is a bird of the family "
             f"{texts['family']}, order {texts['order']}.",
             labelled("Size", texts["size"], "en"), labelled("Range", texts["distribution"], "en"),
             labelled("Habitat", texts["habitat"], "en"), labelled("Diet", texts["diet"], "en"),
             labelled("Fun fact", fun_fact, "en")]
    return " ".join(part for part in parts if part)


def labelled(label: str, text: str, lang: str, mark: str | None = None) -> str:
    """'体型：…' / 'Size: …', or nothing when the card does not know."""
    if not text:
        return ""
    return f"{label}{mark or '：'}{text}" if lang == "zh" else f"{label}{mark or ':'} {text}"


def conservation(card: SpeciesCard, lang: str) -> str:
    """The IUCN category in words, then the card's own note."""
    note = card.texts["conservation"][lang]
    if not card.iucn:
        return note
    words = IUCN_WORDS[lang][card.iucn]
    if lang == "zh":
        status = f"在 IUCN 红色名录中，{card.chinese_name}的等级是“{words}”（{card.iucn}）"
    else:
        status = f"On the IUCN Red List, {english_subject(card)} is listed as {words} ({card.iucn})"
    if note.lower().startswith(words.lower()):  # many notes open with the category: go on from there, not repeat it
        return status + note[len(words):]
    return f"{status}。{note}" if lang == "zh" else f"{status}. {note}"


def where_it_lives(card: SpeciesCard, lang: str) -> str:
    distribution, habitat = card.texts["distribution"][lang], card.texts["habitat"][lang]
    if not (distribution and habitat):
        return distribution or habitat
    return f"{distribution}栖息环境：{habitat}" if lang == "zh" else f"{distribution} Habitat: {habitat}"


def diet(card: SpeciesCard, lang: str) -> str:
    text = card.texts["diet"][lang]
    # the Chinese cards write diet as a predicate ("主要吃鱼…"), so the name makes it a sentence
    return f"{card.chinese_name}{text}" if lang == "zh" and text else text


def card_text(field: str) -> Callable[[SpeciesCard, str], str]:
    return lambda card, lang: card.texts[field][lang]


ANSWERS: dict[str, Callable[[SpeciesCard, str], str]] = {
    "diet": diet,
    "where": where_it_lives,
    "size": card_text("size"),
    "similar": card_text("similar"),
    "conservation": conservation,
    "breeding": card_text("breeding"),
    "behaviour": card_text("behaviour"),
}


def record(instruction: str, output: str) -> Record:
    return {"instruction": instruction.strip(), "input": "", "output": output.strip()}


def species_records(card: SpeciesCard) -> list[Record]:
    """The original overview questions, then one question per known fact, Chinese before English."""
    records = [record(ORIGINAL_QUESTION.format(name=card.chinese_name), overview(card, "zh")),
               record(ORIGINAL_QUESTION.format(name=card.dataset_name),
                      f"{card.dataset_name} 就是{card.chinese_name}。" + overview(card, "zh")),
               record(question(card, "overview", "en"), overview(card, "en"))]
    for template, answer in ANSWERS.items():
        for lang in ("zh", "en"):
            text = answer(card, lang)
            if text.strip():  # an empty field means "not known": no question rather than an empty answer
                records.append(record(question(card, template, lang), text))
    return records


def identity_records() -> list[Record]:
    return [record(instruction, output) for instruction, output in IDENTITY]


def build_tuning_set(cards: dict[str, SpeciesCard] | None = None) -> tuple[list[Record], list[Record]]:
    """(train, dev): dev holds every record of the held-out species, train the rest and the identity records."""
    cards = bundled_cards() if cards is None else cards
    train, dev = identity_records(), []
    for name, card in cards.items():
        (dev if is_dev_species(name) else train).extend(species_records(card))
    return train, dev


def dev_species(cards: dict[str, SpeciesCard] | None = None) -> list[str]:
    cards = bundled_cards() if cards is None else cards
    return [name for name in cards if is_dev_species(name)]


def records_json(records: list[Record]) -> str:
    """The exact text of a tuning file: the committed files are compared with this."""
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a file


def write_split(folder: Path, train: list[Record], dev: list[Record]) -> dict[str, list[Record]]:
    """Write `train.json` and `dev.json` into `folder`; returns the records by file stem."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, records in (("train", train), ("dev", dev)):
        _write_text(folder / f"{stem}.json", records_json(records))
    return {"train": train, "dev": dev}


def write_tuning_set(folder: Path = DEFAULT_FOLDER) -> dict[str, list[Record]]:
    return write_split(folder, *build_tuning_set())


def is_chinese(record: Record) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in record["instruction"])


def _main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    written = write_tuning_set(folder)
    for stem, records in written.items():
        chinese = sum(is_chinese(r) for r in records)
        print(f"{folder / stem}.json: {len(records)} records ({chinese} zh, {len(records) - chinese} en)")
    print(f"dev species ({len(dev_species())}): {', '.join(dev_species())}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

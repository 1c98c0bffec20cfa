"""The faithfulness guard: does a generated answer state anything its passages do not?

An answer's checkable claims are the numbers it gives (with their unit), scientific names, bird names, places
and months. Each must be found in the passages the answer was generated from, after both sides are
normalised the same way: full-width and Chinese numerals become digits (二十五 → 25), units one spelling
(厘米, centimetres → cm), case and punctuation fold, ranges give both ends (25–29 cm → 25 cm and 29 cm; a
month range gives every month in it). A claim not found is *unsupported*; one unsupported claim fails the
answer.

A false statement made of ordinary words ("painted over by water", "on Lake Constance") names nothing the
lists know, so each sentence is a claim too: one of three or more content words, fewer than half of which
are in the passages, is *off-passage* (kind "sentence"). A faithful paraphrase in other words fails this
test too; the cost is that the passages are shown instead of it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import cache

from birdsdao.resources import data_dir

PLACES_FILE = data_dir() / "places.txt"


@dataclass(frozen=True)
class Claim:
    kind: str  # number | scientific_name | bird | place | month | sentence
    text: str  # as the answer wrote it
    key: str  # what is looked for in the passages, normalised

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    claims: list[Claim]
    unsupported: list[Claim]

    @property
    def faithful(self) -> bool:
        return not self.unsupported


# ---------------------------------------------------------------------------------------------- normalising
_DASHES = re.compile(r"\s*[-‐‑‒–—―~～〜至到]\s*(?=[\d零〇一二两三四五六七八九十])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_CITATION = re.compile(r"\[\d+\]")


def normalise(text: str) -> str:
    """Full-width to ASCII, lower case, one kind of dash between numbers, no thousands commas, no [n] citations."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _CITATION.sub(" ", text)
    text = _THOUSANDS.sub("", text)
    return _DASHES.sub("-", text)


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CN_NUMERAL = "零〇一二两三四五六七八九十百千万"


def chinese_number(text: str) -> int | None:
    """二十五 → 25, 一百二 → 120, 十 → 10, 三千 → 3000; None when it is not a numeral."""
    if not text or any(char not in _CN_DIGITS and char not in _CN_UNITS for char in text):
        return None
    if all(char in _CN_DIGITS for char in text) and len(text) > 1:  # 一九九八 read digit by digit
        return int("".join(str(_CN_DIGITS[char]) for char in text))
    total, section, digit = 0, 0, None
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char == "万":
            section = (section + (digit or 0)) * 10000
            total, section, digit = total + section, 0, None
        else:
            section += (1 if digit is None else digit) * _CN_UNITS[char]
            digit = None
    return total + section + (digit or 0)


# unit words -> one key; measurements are compared with their unit, counts only by their number
_UNITS = {
    "cm": ("cm", "centimetre", "centimetres", "centimeter", "centimeters", "厘米", "公分"),
    "mm": ("mm", "millimetre", "millimetres", "millimeter", "millimeters", "毫米"),
    "km": ("km", "kilometre", "kilometres", "kilometer", "kilometers", "公里", "千米"),
    "m": ("m", "metre", "metres", "meter", "meters", "米"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos", "公斤", "千克"),
    "g": ("g", "gram", "grams", "克"),
    "in": ("inch", "inches", "英寸"),
    "ft": ("ft", "foot", "feet", "英尺"),
    "lb": ("lb", "lbs", "pound", "pounds", "磅"),
    "oz": ("oz", "ounce", "ounces", "盎司"),
    "t": ("ton", "tons", "tonne", "tonnes", "吨"),
    "%": ("%", "percent", "per cent"),
    "km/h": ("km/h", "kph", "公里/小时", "千米/小时"),
    "mph": ("mph",),
}
MEASURES = frozenset(_UNITS)
_UNIT_KEY = {word: key for key, words in _UNITS.items() for word in words}
_UNIT_WORDS = sorted(_UNIT_KEY, key=len, reverse=True)
_UNIT_PATTERN = "|".join(re.escape(word) + (r"\b" if word[-1].isascii() and word[-1].isalpha() else "")
                         for word in _UNIT_WORDS)
_NUMBER = r"\d+(?:\.\d+)?"
_NUMBERS = re.compile(rf"(?<![A-Za-z0-9.])({_NUMBER})(?:-({_NUMBER}))?(?:\s*({_UNIT_PATTERN}))?")
# Chinese numerals count only before a unit or a classifier: 一 alone is everywhere in Chinese (一起, 一般)
_CN_CLASSIFIERS = "只个枚种年天周岁次倍对群窝道"  # 一 itself is left alone: 一种, 一只 say "a", not "one"
_CN_QUANTITY = re.compile(
    rf"([{_CN_NUMERAL}]+)(?:-([{_CN_NUMERAL}]+))?\s*(?=({_UNIT_PATTERN}|[{_CN_CLASSIFIERS}]|个月))")
_PERCENT_ZH = re.compile(rf"百分之({_NUMBER}|[{_CN_NUMERAL}]+)")


def _digits_for_chinese(text: str) -> str:
    """Chinese numerals that count something, written as digits (二十五厘米 → 25厘米; 百分之十 → 10%)."""
    text = _PERCENT_ZH.sub(lambda m: f"{m.group(1) if m.group(1)[0].isdigit() else chinese_number(m.group(1))}%",
                           text)

    def digits(match: re.Match) -> str:
        low, high = chinese_number(match.group(1)), chinese_number(match.group(2) or "")
        if low is None or (low == 1 and high is None and match.group(3) not in _UNIT_KEY):
            return match.group(0)
        return f"{low}" + (f"-{high}" if high is not None else "")

    return _CN_QUANTITY.sub(digits, text)


def _value(number: str) -> str:
    return str(float(number)).removesuffix(".0")


def numbers(text: str) -> list[tuple[str, str, str]]:
    """(as written, value, unit key or '') for every number in a normalised text; a range gives both ends."""
    found = []
    for match in _NUMBERS.finditer(_digits_for_chinese(text)):
        unit = _UNIT_KEY.get(match.group(3) or "", "")
        for part in (match.group(1), match.group(2)):
            if part is not None:
                found.append((match.group(0).strip(), _value(part), unit))
    return found


# ---------------------------------------------------------------------------------------------- months
_MONTHS_EN = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
              "november", "december")
_MONTH_EN = re.compile(r"\b(" + "|".join(_MONTHS_EN) + r")\b(?:\s*(?:-|to|through|until|till)\s*\b("
                       + "|".join(_MONTHS_EN) + r")\b)?")
_MONTH_ZH = re.compile(rf"(?<!\d)(\d{{1,2}}|[{_CN_NUMERAL}]{{1,3}})(?:-(\d{{1,2}}|[{_CN_NUMERAL}]{{1,3}}))?月")
# "may" is a month only where a month can stand: in May, early May, May to July, May 2020
_MAY_AS_MONTH = re.compile(r"\b(?:in|early|late|mid|from|until|till|by|of|since|through|and|or|-|to)\s+may\b|"
                           r"\bmay\s*(?:-|to|and|through|until|\d)")


def _month_number(token: str) -> int | None:
    if token.isdigit():
        value = int(token)
    else:
        value = chinese_number(token)
    return value if value and 1 <= value <= 12 else None


def months(text: str, expand: bool) -> list[tuple[str, int]]:
    """(as written, month 1..12) in a normalised text; `expand` lists every month of a range, else its ends."""
    found: list[tuple[str, int]] = []

    def add(written: str, first: int | None, last: int | None) -> None:
        if first is None:
            return
        if last is None:
            found.append((written, first))
        elif expand:
            span = (last - first) % 12
            found.extend((written, (first - 1 + step) % 12 + 1) for step in range(span + 1))
        else:
            found.extend([(written, first), (written, last)])

    for match in _MONTH_EN.finditer(text):
        if match.group(1) == "may" and not match.group(2) and not _MAY_AS_MONTH.search(
                text[max(0, match.start() - 8):match.end() + 6]):
            continue
        last = _MONTHS_EN.index(match.group(2)) + 1 if match.group(2) else None
        add(match.group(0), _MONTHS_EN.index(match.group(1)) + 1, last)
    for match in _MONTH_ZH.finditer(text):
        if text[max(0, match.start() - 1):match.start()] == "个" or text[match.end() - 2:match.end()] == "个月":
            continue  # 3个月 is a duration
        add(match.group(0), _month_number(match.group(1)),
            _month_number(match.group(2)) if match.group(2) else None)
    return found


# ---------------------------------------------------------------------------------------------- names
_SCIENTIFIC = re.compile(r"\b([A-Z][a-z]{2,})\s+([a-z]{3,})(?:\s+([a-z]{3,}))?\b")


def scientific_names(text: str) -> list[str]:
    """Latin binomials in an un-normalised text: a capitalised word and a lower-case one, neither English."""
    from birdsdao.knowledge.lexical import is_common_word

    found = []
    for match in _SCIENTIFIC.finditer(text):
        genus, epithet = match.group(1), match.group(2)
        if is_common_word(genus.lower()) or is_common_word(epithet) or _english(genus) or _english(epithet):
            continue
        found.append(f"{genus} {epithet}")
    return found


def _english(word: str) -> bool:
    """A word an English sentence might start with: the common ones, plus what MiniLM's vocabulary lacks."""
    return word.lower() in _EXTRA_ENGLISH


_EXTRA_ENGLISH = frozenset("""mostly usually often sometimes also however although though they them their there
these those which while where when what other others another mainly chiefly largely partly both either neither
each every many much most some such their itself themselves""".split())

# the last word of an English bird name: a capitalised run ending in one of these names a kind of bird
_BIRD_HEADS = """albatross auk avocet babbler barbet bee-eater bird bittern blackbird bluebird booby bowerbird
broadbill bulbul bunting bustard buzzard canary cardinal catbird chickadee chough cockatoo condor coot cormorant
coucal cowbird crake crane creeper crossbill crow cuckoo curlew dipper dove dowitcher duck dunnock eagle egret
eider emu falcon finch flamingo flycatcher frigatebird gannet goose goshawk grackle grebe grosbeak grouse guan gull
harrier hawk heron hoatzin honeyeater hoopoe hornbill hummingbird ibis jacana jackdaw jaeger jay junco kestrel
killdeer kingbird kingfisher kinglet kite kiwi lapwing lark loon lorikeet lovebird macaw magpie mallard manakin
martin meadowlark merganser merlin mockingbird moorhen motmot munia myna nighthawk nightingale nightjar nuthatch
oriole oropendola osprey ostrich ovenbird owl oystercatcher parakeet parrot partridge peacock pelican penguin
petrel pheasant phoebe pigeon pipit pitta plover ptarmigan puffin quail quetzal rail raven redstart rhea roadrunner
robin roller rook sandpiper sapsucker scaup shag shearwater shoebill shrike siskin skua skylark snipe sparrow
spoonbill starling stilt stork sunbird swallow swamphen swan swift tanager teal tern thrasher thrush tinamou tit
titmouse toucan toucanet towhee trogon turaco turkey vireo vulture wagtail warbler waxwing weaver wheatear whistler
whydah wigeon woodcock woodpecker wren""".split()
_ENGLISH_BIRD = re.compile(r"\b((?:[A-Z][a-z'’]+(?:-[a-z]+)?[ -]){1,3}(?:" + "|".join(_BIRD_HEADS) + r")s?)\b",
                           re.IGNORECASE)
# Chinese bird names end in one of these characters; the generic words that do are not names
_BIRD_CHARS = set("鸟雀鹰雕隼鸮鸭鹅鹤鹭鹳鸡鸽鸠鹊鸦鹟鹛鸫鹎莺燕鸥鹬鸻鹉鹃鸲鹨鸰鹀鹑鸪鹕鹚鹱鹫鸨鹮鹇雉鸵鹋鸯䴓䴘鹩鹂鹡鹗"
                  "鹦鸩鹪鹠鸺鹰鹳鹧鹞鸢鹱鸊鹈鸊鹬鹆鹁鸬鹮鹎鹂鹃鹏鹫鸾鹓鹦鹭鹮鹃鹛")
_GENERIC_ZH = frozenset("""鸟 鸟类 雏鸟 幼鸟 成鸟 亲鸟 水鸟 海鸟 候鸟 留鸟 小鸟 大鸟 笼鸟 飞鸟 鸣鸟 鸟儿
野鸟 猛禽 鸣禽 涉禽 家鸡 母鸡
公鸡 小鸡 野鸭 家鸭 鸭子 鸽子 燕子 麻雀 乌鸦 老鹰 喜鹊 雄鸟 雌鸟 群鸟 益鸟 珍禽 观鸟 养鸟 捕鸟 食鸟""".split())


@cache
def _known_bird_names() -> tuple[str, ...]:
    """Names of birds the project knows (cards, their aliases, jieba's bird words), longest first."""
    from birdsdao.knowledge.lexical import bird_words
    from birdsdao.species_cards import card_names

    names = set(bird_words())
    for english, chinese in card_names().values():
        names.update(name for name in (english, chinese) if name)
    return tuple(sorted(names, key=len, reverse=True))


def prepare() -> None:
    """Read the names and places `check` looks for (0.3 s, once a process): callable while the model loads."""
    _known_bird_names()
    _places()


def bird_names(text: str, lang: str) -> list[str]:
    """Bird names an answer uses: known names, capitalised English names ending in a kind of bird, and
    Chinese words ending in a bird character (jieba, with the known names kept whole)."""
    found: list[str] = []
    lowered = text.lower()
    for name in _known_bird_names():
        present = re.search(rf"\b{re.escape(name.lower())}\b", lowered) if name.isascii() else name in text
        if present and not any(name.lower() in longer.lower() for longer in found):
            found.append(name)
    for match in _ENGLISH_BIRD.finditer(text):
        name = match.group(1).strip()
        words = name.split()
        while words and (not words[0][0].isupper() or _english(words[0])
                         or words[0].lower() in ("the", "a", "an", "this", "that", "its", "like")):
            words = words[1:]  # "The Killdeer", "Mostly Swallows": the leading word is not part of the name
        name = " ".join(words)
        if len(words) >= 2 and words[0][0].isupper() and not any(name.lower() in f.lower() for f in found):
            found.append(name)
    if lang == "zh" or re.search(r"[\u4e00-\u9fff]", text):
        from birdsdao.knowledge.lexical import _jieba

        words = _jieba().lcut(text)
        for i, word in enumerate(words):
            if len(word) == 1 and word in _BIRD_CHARS and i and re.fullmatch(r"[\u4e00-\u9fff]{2,3}", words[i - 1]):
                word = words[i - 1] + word  # a name jieba does not know comes apart: 环颈 + 鸻
            if len(word) >= 2 and word[-1] in _BIRD_CHARS and word not in _GENERIC_ZH and \
                    not any(word in longer for longer in found):
                found.append(word)
    return found


@cache
def _places() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(a name, all names of that place) for every name in data/places.txt, longest name first."""
    rows = []
    for line in PLACES_FILE.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names = tuple(name.strip() for name in line.split("|") if name.strip())
            rows += [(name, names) for name in names]
    return tuple(sorted(rows, key=lambda row: len(row[0]), reverse=True))


def places(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name as found, every name of that place) for the places a text names (English names case-sensitive,
    so 'java' the coffee and 'china' the plates are not places)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for name, names in _places():
        if name.isascii():
            hit = re.search(rf"\b{re.escape(name)}\b", text)
        else:
            hit = name in text
        if hit and not any(name in longer for longer, _ in found):
            found.append((name, names))
    return found


# ---------------------------------------------------------------------------------------------- the guard
def _folded(text: str) -> str:
    """For name look-ups: normalised, punctuation and spacing gone (Porphyrio  porphyrio, black-throated)."""
    return re.sub(r"[\W_]+", "", normalise(text))


def claims(answer: str, lang: str) -> list[Claim]:
    """The checkable claims of an answer, in the order of kinds (numbers, scientific names, birds, places,
    months)."""
    text = normalise(answer)
    found: list[Claim] = []
    month_spans = {written for written, _ in months(text, expand=False)}
    for written, value, unit in numbers(text):
        if unit == "" and any(written in span for span in month_spans):
            continue  # 5月 is a month, checked as one
        found.append(Claim("number", written, f"{value} {unit}".strip()))
    found += [Claim("scientific_name", name, _folded(name)) for name in scientific_names(answer)]
    found += [Claim("bird", name, _folded(name.removesuffix("s") if name.isascii() else name))
              for name in bird_names(answer, lang)]
    found += [Claim("place", name, "|".join(_folded(other) for other in names)) for name, names in places(answer)]
    found += [Claim("month", written, str(month)) for written, month in months(text, expand=False)]
    return list(dict.fromkeys(found))


OFF_PASSAGE = 0.5  # a sentence is off-passage when less than half its content words are in the passages
MIN_SENTENCE_WORDS = 3


def off_passage_sentences(answer: str, passages: list[str]) -> list[str]:
    """The answer's sentences whose content words (jieba/English, stopwords left out) are mostly not in
    the passages."""
    from birdsdao.knowledge.extractive import sentences
    from birdsdao.knowledge.lexical import content_words
    from birdsdao.prompts import CANNOT_ANSWER

    text = normalise("\n".join(passages))
    refusals = {_folded(refusal) for refusal in CANNOT_ANSWER.values()}
    off = []
    for sentence in sentences(answer):
        if _folded(sentence) in refusals:
            continue  # saying the passages do not answer is no claim about birds
        words = [normalise(word) for word in content_words(sentence)]
        if len(words) >= MIN_SENTENCE_WORDS and sum(word in text for word in words) / len(words) < OFF_PASSAGE:
            off.append(sentence)
    return off


def check(answer: str, passages: list[str], lang: str) -> Verdict:
    """Each claim of `answer` looked up in `passages` (normalised the same way), then each sentence."""
    joined = "\n".join(passages)
    text = normalise(joined)
    folded = _folded(joined)
    with_unit = {(value, unit) for _, value, unit in numbers(text)}
    values = {value for value, _ in with_unit}
    month_set = {month for _, month in months(text, expand=True)}
    found = claims(answer, lang)
    unsupported = []
    for claim in found:
        if claim.kind == "number":
            value, _, unit = claim.key.partition(" ")
            ok = (value, unit) in with_unit if unit in MEASURES else value in values
        elif claim.kind == "month":
            ok = int(claim.key) in month_set
        elif claim.kind == "place":
            ok = any(name and name in folded for name in claim.key.split("|"))
        else:
            ok = bool(claim.key) and claim.key in folded
        if not ok:
            unsupported.append(claim)
    for sentence in off_passage_sentences(answer, passages):
        claim = Claim("sentence", sentence, _folded(sentence))
        found.append(claim)
        unsupported.append(claim)
    return Verdict(found, unsupported)

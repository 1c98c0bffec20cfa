"""The faithfulness guard, extractive answers and how `Asker` labels each (no language model needed)."""

from __future__ import annotations

import json

import pytest

from birdsdao.assistant.answer import GENERATES_BY_DEFAULT, Asker, generates
from birdsdao.knowledge.extractive import best_sentences, extractive_answer
from birdsdao.knowledge.faithfulness import check, chinese_number, months, normalise, numbers
from birdsdao.knowledge.faithfulness_gold import GOLD_FILE, build_gold, has_key_fact, key_fact, read_gold

KILLDEER_EN = [
    "Killdeer (双领鸻, Charadrius vociferus) size: A large plover, about 20–28 cm long, with long legs.",
    "Killdeer (双领鸻, Charadrius vociferus) range: Across North America from southern Canada to Mexico; "
    "nests from March to June.",
    "Killdeer (双领鸻, Charadrius vociferus) telling it apart: The Semipalmated Plover is smaller.",
]
KILLDEER_ZH = [
    "双领鸻（Killdeer，Charadrius vociferus） 体型：大型鸻类，体长约20–28厘米，腿长，尾也较长。",
    "双领鸻（Killdeer，Charadrius vociferus） 分布：分布于北美洲，从加拿大南部到墨西哥；3–6月繁殖。",
    "双领鸻（Killdeer，Charadrius vociferus） 相似种辨别：半蹼鸻体型较小，胸前只有一道深色胸带。",
]


def unsupported(answer: str, passages: list[str], lang: str) -> list[tuple[str, str]]:
    """The named claims not in the passages (sentences are checked apart, below)."""
    return [(claim.kind, claim.text) for claim in check(answer, passages, lang).unsupported
            if claim.kind != "sentence"]


def test_numerals_units_and_ranges_are_normalised_alike():
    assert chinese_number("二十五") == 25 and chinese_number("十") == 10 and chinese_number("一九九八") == 1998
    assert numbers(normalise("约２５–２９厘米")) == [("25-29厘米", "25", "cm"), ("25-29厘米", "29", "cm")]
    assert numbers(normalise("about 1,200 metres")) == [("1200 metres", "1200", "m")]
    assert [value for _, value, _ in numbers(normalise("体长约二十五厘米，有三枚卵"))] == ["25", "3"]
    assert numbers(normalise("它是一种鸟，有一只脚")) == []  # 一 here says "a", not a count
    assert [m for _, m in months(normalise("3–5月繁殖"), expand=True)] == [3, 4, 5]
    assert [m for _, m in months(normalise("from May to July; it may sing"), expand=False)] == [5, 7]


@pytest.mark.parametrize("answer, lang, expected", [
    ("The Killdeer is approximately 84 inches (about 2 meters) long.", "en", [("number", "84 inches"),
                                                                             ("number", "2 meters")]),
    ("Females weigh up to 1 ton.", "en", [("number", "1 ton")]),
    ("Its scientific name is Charadrius melodus.", "en", [("scientific_name", "Charadrius melodus")]),
    ("It is often confused with the Piping Plover.", "en", [("bird", "Piping Plover")]),
    ("It breeds in Siberia in August.", "en", [("place", "Siberia"), ("month", "august")]),
    ("双领鸻体长约三十厘米。", "zh", [("number", "30厘米")]),
    ("双领鸻分布于中国，9月繁殖。", "zh", [("place", "中国"), ("month", "9月")]),
    ("双领鸻常和环颈鸻在一起。", "zh", [("bird", "环颈鸻")]),
    ("双领鸻的学名是 Charadrius alexandrinus。", "zh", [("scientific_name", "Charadrius alexandrinus")]),
])
def test_the_guard_catches_what_the_passages_do_not_say(answer, lang, expected):
    passages = KILLDEER_ZH if lang == "zh" else KILLDEER_EN
    assert unsupported(answer, passages, lang) == expected


@pytest.mark.parametrize("answer, lang", [
    ("The Killdeer (Charadrius vociferus) is about 20–28 cm long and lives in North America, from Canada to "
     "Mexico. It nests in April; the Semipalmated Plover is smaller.", "en"),
    ("Killdeer are 20 to 28 centimetres long.", "en"),
    ("It is a large plover with long legs.", "en"),  # no named claim, and its words are the passages'
    ("双领鸻（Charadrius vociferus）体长约二十至二十八厘米，分布于北美洲的加拿大和墨西哥，4月繁殖；半蹼鸻较小。", "zh"),
    ("双领鸻体长20-28 cm。", "zh"),
    ("根据已知信息无法回答该问题。", "zh"),
])
def test_a_faithful_answer_passes(answer, lang):
    passages = KILLDEER_ZH if lang == "zh" else KILLDEER_EN
    verdict = check(answer, passages, lang)
    assert verdict.faithful, verdict.unsupported
    if "20" in answer or "二十" in answer:
        assert any(claim.kind == "number" for claim in verdict.claims)  # it did check, and found


def test_a_sentence_mostly_not_in_the_passages_is_off_passage_but_a_refusal_is_not():
    verdict = check("It nests in a swampy forest near a park on a lake.", KILLDEER_EN, "en")
    assert [claim.kind for claim in verdict.unsupported] == ["sentence"]
    verdict = check("双领鸻喜欢在城市公园的湖边唱歌跳舞。", KILLDEER_ZH, "zh")
    assert [claim.kind for claim in verdict.unsupported] == ["sentence"]
    assert check("A large plover, about 20–28 cm long, with long legs.", KILLDEER_EN, "en").faithful
    assert check("The known information cannot answer this.", KILLDEER_EN, "en").faithful


def test_places_count_in_either_language_and_birds_in_any_case():
    assert unsupported("It lives in 北美洲 and in mexico's north.", KILLDEER_EN, "en") == []
    assert unsupported("双领鸻分布于North America。", KILLDEER_ZH, "zh") == []
    assert unsupported("The semipalmated plover is smaller.", KILLDEER_EN, "en") == []


class Hit:
    """Enough of retrieval.Hit for answers: text, metadata, relevance and to_dict."""

    def __init__(self, text: str, species: str | None = "KILLDEAR"):
        self.text, self.metadata, self.relevant = text, ({"species": species} if species else {}), True

    def to_dict(self) -> dict:
        return {"text": self.text}


def test_extractive_answers_quote_the_sentences_that_answer_with_the_birds_name():
    hits = [Hit(text) for text in KILLDEER_ZH]
    chosen = best_sentences("双领鸻体长多少？", hits, "zh")
    assert chosen[0][:2] == (1, "双领鸻") and "20–28厘米" in chosen[0][2]
    text = extractive_answer("双领鸻体长多少？", hits, "zh")
    assert text.splitlines()[0] == "（摘自物种卡片原文，不是生成的回答）"
    assert "双领鸻：大型鸻类，体长约20–28厘米，腿长，尾也较长。 [1]" in text
    english = extractive_answer("Where does the Killdeer live?", [Hit(text) for text in KILLDEER_EN], "en")
    assert english.startswith("(Quoted from the species cards") and "Killdeer: Across North America" in english
    assert "[2]" in english
    other = extractive_answer("Where does it live?", [Hit("Swallows winter in Africa.", species=None)], "en")
    assert other == "(Quoted from the knowledge base, not a generated answer)\nSwallows winter in Africa. [1]"
    for question, quoted in (("双领鸻体长多少？", text), ("Where does the Killdeer live?", english)):
        lang = "zh" if "体长" in question else "en"
        assert check(quoted, KILLDEER_ZH if lang == "zh" else KILLDEER_EN, lang).faithful


@pytest.fixture
def writes(monkeypatch):
    """A stand-in language model: `writes.text` is what it generates, in a few pieces."""
    import birdsdao.language_model.generate as generate
    import birdsdao.language_model.prompts as prompts

    class Model:
        tokenizer, family, text = None, "gemma3_text", ""

    def stream_text(model, prompt, settings, stops=()):
        for start in range(0, len(model.text), 7):
            yield model.text[start:start + 7]

    monkeypatch.setattr(generate, "stream_text", stream_text)
    monkeypatch.setattr(prompts, "build_prompt", lambda tokenizer, family, question, history: (question, ()))
    return Model()


def ask(model, question: str, lang: str, style="generate"):
    passages = KILLDEER_ZH if lang == "zh" else KILLDEER_EN
    asker = Asker(retrieve=lambda _question: [Hit(text) for text in passages], model=model, style=style)
    answer, stream = asker.ask(question)
    pieces = list(stream)
    return answer, pieces, asker


def test_a_faithful_generated_answer_is_shown_once_checked(writes):
    writes.text = "The Killdeer is about 20–28 cm long."
    answer, pieces, asker = ask(writes, "How long is the Killdeer?", "en")
    assert answer.mode == "grounded" and answer.text == writes.text
    assert pieces == [writes.text]  # held back until the guard had seen all of it, then whole
    data = answer.to_dict()
    assert data["guard"]["unsupported_claims"] == [] and {"20 cm", "28 cm"} <= {
        claim["key"] for claim in data["guard"]["claims"]}
    assert asker.history == [("How long is the Killdeer?", writes.text)]


@pytest.mark.parametrize("lang, question, invented, claim", [
    ("en", "How long is the Killdeer?", "The Killdeer is about 84 inches long and weighs 1 ton.", "84 inches"),
    ("en", "How long is the Killdeer?", "It sings at night among the Sahara dunes.", "1 sentence"),
    ("zh", "双领鸻体长多少？", "双领鸻体长约三十厘米，分布于中国。", "30厘米"),
])
def test_an_invented_claim_is_not_shown_the_passages_are(writes, lang, question, invented, claim):
    writes.text = invented
    answer, pieces, _ = ask(writes, question, lang)
    assert answer.mode == "guarded" and answer.generated == invented
    shown = "".join(pieces)
    assert invented not in shown and shown == answer.text
    assert claim in shown.splitlines()[0]  # the notice says what was not in the sources
    assert ("以下为检索到的原文" if lang == "zh" else "Retrieved text, not a generated answer") in shown
    assert ("20–28厘米" if lang == "zh" else "20–28 cm") in shown  # the sentence that answers
    data = json.loads(json.dumps(answer.to_dict(), ensure_ascii=False))
    failed = [c["text"] if c["kind"] != "sentence" else "1 sentence" for c in data["guard"]["unsupported_claims"]]
    assert data["mode"] == "guarded" and claim in failed
    assert data["guard"]["generated"] == invented


def test_the_default_style_quotes_where_the_default_model_is_not_trusted(writes):
    writes.text = "双领鸻体长约20–28厘米。"
    for lang, question in (("zh", "双领鸻体长多少？"), ("en", "How long is the Killdeer?")):
        answer, pieces, asker = ask(writes, question, lang, style="auto")
        assert answer.mode == ("grounded" if GENERATES_BY_DEFAULT[lang] else "extractive")
        assert generates("auto", lang) == GENERATES_BY_DEFAULT[lang] and generates("generate", lang)
    answer, _, _ = ask(None, "双领鸻体长多少？", "zh", style="passages")
    assert answer.mode == "retrieved" and "以下为检索到的原文" in answer.text
    answer, _, _ = ask(None, "How long is the Killdeer?", "en", style="extract")
    assert answer.mode == "extractive" and "Quoted from the species cards" in answer.text


def test_the_gold_set_is_grounded_in_the_cards_and_in_both_languages():
    from birdsdao.knowledge.builtin import card_pages
    from birdsdao.species_cards import bundled_cards

    gold = read_gold()
    cards = bundled_cards()
    assert len(gold) >= 100 and len({record.qid for record in gold}) == len(gold)
    assert min(sum(record.lang == lang for record in gold) for lang in ("zh", "en")) >= 50
    assert [record.to_json() for record in gold] == [record.to_json() for record in build_gold(cards)], (
        f"{GOLD_FILE} is stale: run python -m birdsdao.knowledge.faithfulness_gold")
    for record in gold:
        card_text = " ".join(page.text for page in card_pages(cards[record.species], record.lang))
        assert has_key_fact(card_text, record.key_fact), record  # the card itself answers it
    assert key_fact(cards["KILLDEAR"], "size", "zh") == ("20 cm",)
    assert has_key_fact("体长约二十厘米", ("20 cm",)) and not has_key_fact("体长约20米", ("20 cm",))

"""One question answered: retrieve from a KB, then answer from what was found, with its sources (the Asker).

It sits in the assistant layer because it is where retrieval (knowledge) and generation (language_model) meet;
`Assistant.ask` and `Assistant.describe` build an Asker per question.

Six ways an answer comes about, each labelled so a reader knows what they are looking at:
  * "grounded"   - the model answered from the retrieved passages and the faithfulness guard found every
                   number, name, place and month it states in them (knowledge/faithfulness.py);
  * "guarded"    - the model answered, but stated something the passages do not say: its text is not shown,
                   the passages' best sentences are, labelled as retrieved text, with the failed claims;
  * "extractive" - the default where the default model cannot answer faithfully (GENERATES_BY_DEFAULT):
                   the passages' sentences that answer the question, with the bird's name, labelled as quoted;
  * "plain"      - no KB: the model answers on its own, as the original's "pure LLM" mode (nothing to check);
  * "retrieved"  - no model (`--no-llm`, or it failed to load): the best passages themselves;
  * "nothing"    - the KB has nothing relevant: we say so instead of letting the model invent.

A generated answer is held back until the guard has seen it (docs/answers.md says why).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from birdsdao.prompts import grounded_question, has_cjk

NOTHING_FOUND = {
    "zh": "知识库里没有与这个问题相关的内容，无法据此回答。",
    "en": "The knowledge base has nothing on this, so I cannot answer from it.",
}
RETRIEVED_LABEL = {"zh": "（以下为检索到的原文，不是生成的回答）", "en": "(Retrieved text, not a generated answer)"}
GUARD_NOTICE = {
    "zh": "（生成的回答提到了来源里没有的内容：{claims}。因此不显示它，改为显示检索到的原文。）",
    "en": "(The generated answer stated things its sources do not say: {claims}. It is not shown; here is the "
          "retrieved text instead.)",
}
# Where the default model (Gemma 3 270M) answers faithfully enough to generate by default: measured with
# bench/faithfulness.py on data/faithfulness_gold.jsonl (figures in docs/answers.md). Elsewhere the default
# answer is extractive and generation is asked for with --generate.
GENERATES_BY_DEFAULT = {"zh": False, "en": False}
STYLES = ("auto", "generate", "extract", "passages")
# a base model that starts a second answer has finished the first
_NEXT_ANSWER = ("\n答：", "\n答:", "\nAnswer:")


def question_language(text: str) -> str:
    return "zh" if has_cjk(text) else "en"


@dataclass
class Answer:
    question: str
    lang: str
    mode: str  # grounded | guarded | extractive | plain | retrieved | nothing
    hits: list = field(default_factory=list)  # knowledge.retrieval.Hit, best first
    text: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds: retrieval, first_token, generation
    verdict: object | None = None  # faithfulness.Verdict of a generated answer checked against its passages
    generated: str = ""  # what the model wrote, when the guard did not let it be shown

    def to_dict(self) -> dict:
        data = {"question": self.question, "lang": self.lang, "mode": self.mode, "answer": self.text,
                "sources": [hit.to_dict() for hit in self.hits],
                "timings": {key: round(value, 3) for key, value in self.timings.items()}}
        if self.verdict is not None:
            data["guard"] = {"claims": [claim.to_dict() for claim in self.verdict.claims],
                             "unsupported_claims": [claim.to_dict() for claim in self.verdict.unsupported]}
            if self.generated:
                data["guard"]["generated"] = self.generated
        return data


def retrieved_text(hits, lang: str) -> str:
    return RETRIEVED_LABEL[lang] + "\n" + "\n\n".join(
        f"[{number}] {hit.text.strip()}" for number, hit in enumerate(hits, start=1))


def guarded_text(question: str, hits, lang: str, unsupported) -> str:
    """What replaces a generated answer the guard rejected: why, then the passages' best sentences."""
    from birdsdao.knowledge.extractive import quoted_lines

    named = list(dict.fromkeys(claim.text for claim in unsupported if claim.kind != "sentence"))
    sentences = sum(claim.kind == "sentence" for claim in unsupported)
    if sentences:  # a sentence is long: say how many, the JSON has them
        named.append(f"{sentences} 句话" if lang == "zh" else f"{sentences} sentence{'s' if sentences > 1 else ''}")
    listed = ("、" if lang == "zh" else ", ").join(named)
    return (GUARD_NOTICE[lang].format(claims=listed) + "\n" + RETRIEVED_LABEL[lang] + "\n"
            + quoted_lines(question, hits, lang))


def generates(style: str, lang: str) -> bool:
    """Whether an answer in `lang` is to be generated (given a model) under `style`."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    return style == "generate" or (style == "auto" and GENERATES_BY_DEFAULT[lang])


@dataclass
class Asker:
    """One conversation: questions, optional KB retrieval, optional model, and the history of rounds.

    `retrieve(question)` returns the KB's hits (the caller binds store, KB and embedder); `model` is a
    loaded language model or None for retrieved-text answers, or `load_model()` gives it once an answer needs it
    (the model can load while the question's passages are retrieved). `style` says how a KB answer comes about:
    "auto" generates in the languages of GENERATES_BY_DEFAULT and quotes the passages elsewhere, "generate"
    always generates, "extract" always quotes, "passages" shows the passages whole (--no-llm). Without a
    model, "auto" and "generate" show the passages whole too (a model that failed to load).
    """

    retrieve: object | None = None  # Callable[[str], list[Hit]]
    model: object | None = None
    load_model: object | None = None  # Callable[[], model or None]: called once, when an answer needs the model
    style: str = "auto"
    settings: object | None = None  # language_model.generate.GenerationSettings
    history: list[tuple[str, str]] = field(default_factory=list)

    def ask(self, question: str) -> tuple[Answer, Iterator[str]]:
        """The answer's frame (mode, sources) at once, and its text as a stream; the round is kept when drained."""
        lang = question_language(question)
        answer = Answer(question=question, lang=lang, mode="plain")
        started = time.perf_counter()
        if self.retrieve is not None:
            hits = self.retrieve(question)
            answer.timings["retrieval"] = time.perf_counter() - started
            relevant = [hit for hit in hits if hit.relevant]
            if not relevant:
                answer.mode = "nothing"
                return answer, self._fixed(answer, NOTHING_FOUND[lang])
            answer.hits = relevant
            if self.style == "extract" or (self.style == "auto" and not generates("auto", lang)):
                from birdsdao.knowledge.extractive import extractive_answer

                answer.mode = "extractive"
                return answer, self._fixed(answer, extractive_answer(question, relevant, lang))
            if self.style != "passages" and self.model is None:
                from birdsdao.knowledge.faithfulness import prepare

                prepare()  # what the guard will read, while the model may still be loading
            if self.style == "passages" or self._model() is None:
                answer.mode = "retrieved"
                return answer, self._fixed(answer, retrieved_text(relevant, lang))
            answer.mode = "grounded"
            prompt_question = grounded_question([hit.text for hit in relevant], question, lang)
        elif self._model() is None:
            raise ValueError("an answer needs a knowledge base, a language model, or both")
        else:
            prompt_question = question
        return answer, self._generate(answer, prompt_question)

    def _model(self):
        if self.model is None and self.load_model is not None:
            self.model, self.load_model = self.load_model(), None
        return self.model

    def _fixed(self, answer: Answer, text: str) -> Iterator[str]:
        answer.text = text
        yield text

    def _generate(self, answer: Answer, prompt_question: str) -> Iterator[str]:
        from birdsdao.language_model.generate import GenerationSettings, stream_text
        from birdsdao.language_model.prompts import build_prompt

        prompt, stops = build_prompt(self.model.tokenizer, self.model.family, prompt_question, self.history)
        stops = (*stops, *_NEXT_ANSWER)
        started = time.perf_counter()
        pieces: list[str] = []
        checked = bool(answer.hits)  # a grounded answer is held back until the guard has seen it
        for piece in stream_text(self.model, prompt, self.settings or GenerationSettings(), stops):
            if not pieces:
                answer.timings["first_token"] = time.perf_counter() - started
            pieces.append(piece)
            if not checked:
                yield piece
        answer.timings["generation"] = time.perf_counter() - started
        answer.text = "".join(pieces).strip()
        if checked:
            self._guard(answer)
            yield answer.text
        # the history keeps the question as asked; retrieved passages are fetched afresh each round
        self.history.append((answer.question, answer.text))

    @staticmethod
    def _guard(answer: Answer) -> None:
        from birdsdao.knowledge.faithfulness import check

        answer.verdict = check(answer.text, [hit.text for hit in answer.hits], answer.lang)
        if not answer.verdict.faithful:
            answer.generated, answer.mode = answer.text, "guarded"
            answer.text = guarded_text(answer.question, answer.hits, answer.lang, answer.verdict.unsupported)

    def clear(self) -> None:
        self.history.clear()

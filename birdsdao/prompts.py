"""Prompt texts every layer may use: what birdsdao asks a language model about a species it found, and how it
asks from retrieved passages.

They are part of the ground layer so that the tuning-set builders (language_model) and the assistant send the
very same prompts: the bundled prefix was tuned on them.
"""

from __future__ import annotations


def describe_question(species: str, english_name: str, chinese_name: str, lang: str) -> str:
    """The original project's question for a species, in the reader's language."""
    if lang == "zh":
        return f"请告诉我些关于{chinese_name or species}的知识吧？"
    return f"Tell me about the {english_name}."


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" for char in text)


CANNOT_ANSWER = {"zh": "根据已知信息无法回答该问题。", "en": "The known information cannot answer this."}
_GROUNDED = {
    "zh": ("已知信息：\n{context}\n\n请只根据上面的已知信息，简洁、准确地回答问题；已知信息里没有的内容不要编造，"
           "答不了就说“" + CANNOT_ANSWER["zh"].rstrip("。") + "”。\n问题：{question}"),
    "en": ("Known information:\n{context}\n\nAnswer the question briefly and accurately using only the known "
           "information above; do not add anything it does not say. If it does not hold the answer, say "
           "\"" + CANNOT_ANSWER["en"] + "\"\nQuestion: {question}"),
}


def context_block(passages: list[str]) -> str:
    return "\n".join(f"[{number}] {' '.join(text.split())}" for number, text in enumerate(passages, start=1))


def grounded_question(passages: list[str], question: str, lang: str) -> str:
    """What the model is asked in grounded mode: the passages, the rules, then the question (the P-Tuning
    set's grounded records are built with this too, so the prefix is tuned on the very format)."""
    return _GROUNDED[lang].format(context=context_block(passages), question=question)

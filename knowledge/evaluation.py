"""Retrieval quality on the bundled gold questions: hit@1, hit@3 and MRR per language and method.

`data/retrieval_gold.jsonl` holds questions over two KBs the project ships: `corpus`
(`data/retrieval/corpus/`, documents named by their path there) and `cards` (the built-in KB of species
cards, documents named by the species' dataset name). Unanswerable questions (no relevant document)
measure rejection instead: none of the top 3 chunks may be judged relevant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from birdsdao.errors import InvalidInputError
from birdsdao.resources import data_dir

GOLD_FILE = data_dir() / "retrieval_gold.jsonl"
CORPUS_DIR = data_dir() / "retrieval" / "corpus"
DEPTH = 10  # MRR@10


@dataclass(frozen=True)
class GoldQuestion:
    qid: str
    kb: str  # corpus | cards
    lang: str
    question: str
    relevant: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)


def read_gold(path: Path = GOLD_FILE) -> list[GoldQuestion]:
    questions, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            question = GoldQuestion(record["qid"], record["kb"], record["lang"], record["question"],
                                    tuple(record["relevant"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{number}: not a gold question ({exc})") from None
        if question.qid in seen:
            raise InvalidInputError(f"{path}:{number}: qid {question.qid} appears twice")
        if bool(record.get("answerable", True)) != question.answerable:
            raise InvalidInputError(f"{path}:{number}: 'answerable' disagrees with 'relevant'")
        seen.add(question.qid)
        questions.append(question)
    return questions


@dataclass
class Scores:
    questions: int = 0
    hit1: float = 0.0
    hit3: float = 0.0
    mrr: float = 0.0
    unanswerable: int = 0
    rejected: float = 0.0  # share of unanswerable questions with no relevant chunk in the top 3
    accepted: float = 0.0  # share of answerable questions with a relevant chunk in the top 3 (else "nothing")

    def row(self) -> dict[str, float]:
        return {"questions": self.questions, "hit@1": round(self.hit1, 3), "hit@3": round(self.hit3, 3),
                "mrr": round(self.mrr, 3), "unanswerable": self.unanswerable, "rejected": round(self.rejected, 3),
                "accepted": round(self.accepted, 3)}


def score(questions: list[GoldQuestion], retrieve: Callable[[str], list], key: Callable[[object], str]) -> Scores:
    """`retrieve(question)` gives hits best first; `key(hit)` names the document a hit belongs to."""
    result = Scores()
    for question in questions:
        hits = retrieve(question.question)
        if not question.answerable:
            result.unanswerable += 1
            result.rejected += not any(hit.relevant for hit in hits[:3])
            continue
        result.questions += 1
        result.accepted += any(getattr(hit, "relevant", True) for hit in hits[:3])
        documents = _distinct([key(hit) for hit in hits])  # several chunks of one document count once
        rank = next((i for i, doc in enumerate(documents[:DEPTH], start=1) if doc in question.relevant), None)
        if rank:
            result.hit1 += rank == 1
            result.hit3 += rank <= 3
            result.mrr += 1 / rank
    if result.questions:
        result.hit1 /= result.questions
        result.hit3 /= result.questions
        result.mrr /= result.questions
        result.accepted /= result.questions
    if result.unanswerable:
        result.rejected /= result.unanswerable
    return result


def _distinct(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def corpus_key(hit) -> str:
    return Path(hit.source).resolve().relative_to(CORPUS_DIR.resolve()).as_posix()


def card_key(hit) -> str:
    return hit.metadata.get("species", "")


def evaluate_kb(kb, embedder, questions: list[GoldQuestion], key, methods=("dense", "bm25", "hybrid"),
                candidates: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {lang: scores}} for one open KB (chunks are fetched deep enough to rank documents to 10)."""
    from birdsdao.knowledge.retrieval import search

    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        table[method] = {}
        for lang in sorted({q.lang for q in questions}):
            subset = [q for q in questions if q.lang == lang]
            table[method][lang] = score(
                subset, lambda text, m=method: search(kb, embedder, text, k=candidates, method=m), key).row()
    return table

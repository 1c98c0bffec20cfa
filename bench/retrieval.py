"""Retrieval quality on the bundled gold set: dense vs BM25 vs hybrid, per language and per KB.

Builds, in a scratch BIRDS_HOME, a KB of data/retrieval/corpus (40 documents, zh + en) and the
built-in KB of species cards, then scores every question of data/retrieval_gold.jsonl:
hit@1, hit@3 and MRR@10 over answerable questions (a document counts once, however many of its chunks
come back), and for unanswerable ones the share where no top-3 chunk is judged relevant.

    python bench/retrieval.py [--json] [--embedding-model NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(home: Path, embedding_model: str | None = None, kbs: tuple[str, ...] = ("corpus", "cards")) -> dict:
    from birdsdao.knowledge import service
    from birdsdao.knowledge.builtin import BUILTIN_NAME, ensure_builtin
    from birdsdao.knowledge.evaluation import CORPUS_DIR, card_key, corpus_key, evaluate_kb, read_gold

    address = service.StoreAddress(home / "kb")
    gold = read_gold()
    model = service.embedder(embedding_model)  # loaded outside the timings
    corpus_built = built = None
    if "corpus" in kbs:
        started = time.perf_counter()
        service.create(address, "gold-corpus", embedding_model)
        service.add(address, "gold-corpus", [CORPUS_DIR])
        corpus_built = round(time.perf_counter() - started, 1)
    if "cards" in kbs:
        started = time.perf_counter()
        ensure_builtin(address, embedding_model=embedding_model)
        built = round(time.perf_counter() - started, 1)
    print(f"{model.name}: built (corpus {corpus_built} s, cards {built} s)", file=sys.stderr, flush=True)
    results = {}
    for kb_name, gold_kb, key in (("gold-corpus", "corpus", corpus_key), (BUILTIN_NAME, "cards", card_key)):
        if gold_kb not in kbs:
            continue
        questions = [q for q in gold if q.kb == gold_kb]
        results[gold_kb] = evaluate_kb(service.snapshot(address, kb_name), model, questions, key)  # as birds asks
    return {"embedding_model": model.name, "corpus_build_seconds": corpus_built,
            "builtin_build_seconds": built, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--embedding-model", action="append", default=None,
                        help="multilingual-e5-small (default), all-MiniLM-L6-v2 or a folder; repeat to compare "
                             "(each model's KBs are built in turn, the first model again last)")
    parser.add_argument("--kb", choices=("corpus", "cards"), action="append", default=None,
                        help="only this gold KB (repeatable; default both)")
    args = parser.parse_args()
    kbs = tuple(args.kb or ("corpus", "cards"))
    models = args.embedding_model or [None]
    order = models + models[:1] if len(models) > 1 else models  # A, B, A: the build times interleaved
    reports = []
    for model in order:
        with tempfile.TemporaryDirectory() as home:
            reports.append(run(Path(home), model, kbs))
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for report in reports:
        _print(report)


def _print(report: dict) -> None:
    print(f"\n{report['embedding_model']}: built-in KB built in {report['builtin_build_seconds']} s, corpus KB in "
          f"{report['corpus_build_seconds']} s (BM25 on jieba words, RRF c=60)")
    for kb, table in report["results"].items():
        print(f"\n{kb}: {'':8} {'n':>4} {'hit@1':>6} {'hit@3':>6} {'MRR':>6} {'unans.':>6} {'rejected':>8}")
        for lang in sorted(table["hybrid"]):
            for method in ("dense", "bm25", "hybrid"):
                row = table[method][lang]
                print(f"  {lang} {method:>8}   {row['questions']:>4} {row['hit@1']:>6.3f} {row['hit@3']:>6.3f} "
                      f"{row['mrr']:>6.3f} {row['unanswerable']:>6} {row['rejected']:>8.3f}")


if __name__ == "__main__":
    main()

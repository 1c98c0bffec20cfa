"""Retrieval quality on the bundled gold set: dense vs BM25 vs hybrid, per language and per KB.

Builds, in a scratch BIRDS_HOME, a KB of data/retrieval/corpus (40 documents, zh + en) and the
built-in KB of species cards, then scores every question of data/retrieval_gold.jsonl:
hit@1, hit@3 and MRR@10 over answerable questions (a document counts once, however many of its chunks
come back), and for unanswerable ones the share where no top-3 chunk is judged relevant.

    python bench/retrieval.py [--json]
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


def run(home: Path) -> dict:
    from birdsdao.knowledge import service
    from birdsdao.knowledge.builtin import BUILTIN_NAME, ensure_builtin
    from birdsdao.knowledge.evaluation import CORPUS_DIR, card_key, corpus_key, evaluate_kb, read_gold

    address = service.StoreAddress(home / "kb")
    gold = read_gold()
    started = time.perf_counter()
    service.create(address, "gold-corpus")
    service.add(address, "gold-corpus", [CORPUS_DIR])
    ensure_builtin(address)
    built = time.perf_counter() - started
    model = service.embedder(None)
    results = {}
    with address.open() as store:
        for kb_name, gold_kb, key in (("gold-corpus", "corpus", corpus_key), (BUILTIN_NAME, "cards", card_key)):
            questions = [q for q in gold if q.kb == gold_kb]
            results[gold_kb] = evaluate_kb(store.get(kb_name), model, questions, key)
    return {"build_seconds": round(built, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        report = run(Path(home))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"KBs built in {report['build_seconds']} s (all-MiniLM-L6-v2, BM25 on jieba words, RRF c=60)")
    for kb, table in report["results"].items():
        print(f"\n{kb}: {'':8} {'n':>4} {'hit@1':>6} {'hit@3':>6} {'MRR':>6} {'unans.':>6} {'rejected':>8}")
        for lang in sorted(table["hybrid"]):
            for method in ("dense", "bm25", "hybrid"):
                row = table[method][lang]
                print(f"  {lang} {method:>8}   {row['questions']:>4} {row['hit@1']:>6.3f} {row['hit@3']:>6.3f} "
                      f"{row['mrr']:>6.3f} {row['unanswerable']:>6} {row['rejected']:>8.3f}")


if __name__ == "__main__":
    main()

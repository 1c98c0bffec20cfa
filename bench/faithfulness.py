"""Faithfulness of answers on data/faithfulness_gold.jsonl, per language: generated vs extractive.

For each question the built-in KB is searched as `birds ask` does (hybrid, k=3); then
  * extractive: the passages' best sentences (the default where generation is not trusted);
  * generated (with --llm): the default model (Gemma 3 270M with the bundled prefix) answers from the same
    passages, greedy, at most --max-new-tokens tokens; the faithfulness guard checks it.
Reported per language and kind of answer:
  * unsupported: share of answers with a claim (number, scientific name, bird, place, month) not in the
    passages; for generated answers before the guard ("raw") and as shown after it ("shown");
  * key fact: share of answers holding the question's key fact (the card's length, category, binomial, …);
  * off-passage sentences: share of answers with a sentence whose content words are mostly not in the
    passages, which the guard does not look at: what the guard cannot see.
Answers are written to --out as JSON lines as they come, so a long run can be read while it goes.

    python bench/faithfulness.py [--llm] [--limit N] [--langs zh,en] [--max-new-tokens 96] [--out FILE]
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

def interleaved(records, limit: int | None):
    """zh and en in turn, so that a run cut short still measures both languages."""
    zh = [record for record in records if record.lang == "zh"]
    en = [record for record in records if record.lang == "en"]
    mixed = [record for pair in zip(zh, en, strict=False) for record in pair] + zh[len(en):] + en[len(zh):]
    return mixed[:limit] if limit else mixed


def run(args) -> None:
    from birdsdao.assistant.answer import Asker
    from birdsdao.knowledge import service
    from birdsdao.knowledge.builtin import BUILTIN_NAME, ensure_builtin
    from birdsdao.knowledge.faithfulness import check
    from birdsdao.knowledge.faithfulness_gold import has_key_fact, read_gold
    from birdsdao.language_model.generate import GenerationSettings

    langs = set(args.langs.split(","))
    gold = interleaved([record for record in read_gold() if record.lang in langs], args.limit)
    home = Path(args.home).expanduser() if args.home else Path(tempfile.mkdtemp(prefix="faithfulness-"))
    address = service.StoreAddress(home / "kb")
    started = time.perf_counter()
    ensure_builtin(address)
    print(f"built-in KB ready in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    embedder = service.embedder(None)
    model = None
    if args.llm:
        from birdsdao.language_model.runtime import load_answering_model, resolve_prefix

        prefix, bundled = resolve_prefix(None, None, args.no_prefix)
        started = time.perf_counter()
        model = load_answering_model(None, Path(args.models_dir).expanduser(), prefix=prefix,
                                     prefix_optional=bundled)
        print(f"model loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - written line by line through the run
    for number, record in enumerate(gold, start=1):
        hits = service.search_kb(address, BUILTIN_NAME, embedder, record.question, k=3)
        passages = [hit.text for hit in hits if hit.relevant]
        row = {"qid": record.qid, "lang": record.lang, "kind": record.kind, "question": record.question,
               "key_fact": record.key_fact, "passages": passages, "own_card_found": any(
                   hit.metadata.get("species") == record.species for hit in hits if hit.relevant)}
        extract = Asker(retrieve=lambda _q, h=hits: h, style="extract")
        answer, stream = extract.ask(record.question)
        "".join(stream)
        # the extractive answer is scored as what it claims: its quoted lines (not the label saying they are
        # quotes), whose "Name:" comes from the card each passage belongs to (a chunk cut from the middle of a
        # card page may not repeat the name in its text)
        quoted = _without_label(answer.text)
        row["extractive"] = _scores(quoted, passages + _card_names_of(hits), record, check, has_key_fact) \
            | {"text": answer.text}
        if model is not None:
            asker = Asker(retrieve=lambda _q, h=hits: h, model=model, settings=settings, style="generate")
            started = time.perf_counter()
            answer, stream = asker.ask(record.question)
            "".join(stream)
            raw = answer.generated or answer.text
            row["generated"] = {"raw": raw, "shown": answer.text, "mode": answer.mode,
                                "seconds": round(time.perf_counter() - started, 2),
                                "raw_scores": _scores(raw, passages, record, check, has_key_fact),
                                "shown_scores": _scores(answer.text, passages, record, check, has_key_fact)}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()
        print(f"{number}/{len(gold)} {record.qid}", file=sys.stderr, flush=True)
    out.close()


def _without_label(text: str) -> str:
    from birdsdao.knowledge.extractive import QUOTED_LABEL

    labels = {label for by_lang in QUOTED_LABEL.values() for label in by_lang.values()}
    first, _, rest = text.partition("\n")
    return rest if first in labels else text


def _card_names_of(hits) -> list[str]:
    from birdsdao.species_cards import card_names

    names = card_names()
    return [" ".join(names.get(species, ())) for species in
            {hit.metadata.get("species") for hit in hits if hit.relevant and hit.metadata.get("species")}]


def _scores(text: str, passages: list[str], record, check, has_key_fact) -> dict:
    from birdsdao.knowledge.faithfulness import off_passage_sentences

    verdict = check(text, passages, record.lang)
    return {"unsupported": [claim.text for claim in verdict.unsupported if claim.kind != "sentence"],
            "key_fact": has_key_fact(text, record.key_fact), "off_passage": off_passage_sentences(text, passages)}


def summarise(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for lang in sorted({row["lang"] for row in rows}):
        subset = [row for row in rows if row["lang"] == lang]
        columns = {"extractive": [row["extractive"] for row in subset]}
        with_llm = [row for row in subset if "generated" in row]
        generated = [row["generated"] for row in with_llm]
        if generated:
            columns["generated raw"] = [item["raw_scores"] for item in generated]
            # as shown after today's guard (named claims and off-passage sentences): the model's text when it
            # passes, else the passages' best sentences, which are the extractive answer's lines
            columns["generated shown"] = [
                row["generated"]["raw_scores"] if _passes(row) else
                {"unsupported": row["extractive"]["unsupported"], "key_fact": row["extractive"]["key_fact"],
                 "off_passage": row["extractive"]["off_passage"]} for row in with_llm]
        table[lang] = {
            name: {"n": len(items),
                   "unsupported": round(sum(bool(item["unsupported"]) for item in items) / len(items), 3),
                   "key_fact": round(sum(item["key_fact"] for item in items) / len(items), 3),
                   "off_passage": round(sum(any(not _is_refusal(s) for s in item["off_passage"]) for item in items)
                                        / len(items), 3)}
            for name, items in columns.items()}
        table[lang]["retrieval"] = {"own_card_found": round(sum(row["own_card_found"] for row in subset) / len(subset),
                                                            3)}
        if generated:
            table[lang]["generated shown"]["guarded"] = round(
                sum(not _passes(row) for row in with_llm) / len(with_llm), 3)
            table[lang]["generated raw"]["refused"] = round(
                sum(_is_refusal(item["raw"].strip()) for item in generated) / len(generated), 3)
            table[lang]["generated raw"]["unsupported_any"] = round(
                sum(not _passes(row) for row in with_llm) / len(with_llm), 3)
            table[lang]["generated shown"]["seconds_median"] = sorted(item["seconds"] for item in generated)[
                len(generated) // 2]
    return table


REFUSALS = {"根据已知信息无法回答该问题。", "The known information cannot answer this."}


def _is_refusal(sentence: str) -> bool:
    return " ".join(sentence.lower().split()).rstrip(".。") in {text.lower().rstrip(".。") for text in REFUSALS}


def _passes(row) -> bool:
    """Today's guard: no unsupported named claim, no off-passage sentence (a refusal is neither)."""
    scores = row["generated"]["raw_scores"]
    return not scores["unsupported"] and not [s for s in scores["off_passage"] if not _is_refusal(s)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", action="store_true", help="also generate answers with the default model (slow)")
    parser.add_argument("--no-prefix", action="store_true", help="the base model without the bundled prefix")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions (zh and en in turn)")
    parser.add_argument("--langs", default="zh,en")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--models-dir", default="~/.birdsdao/models", help="where the converted model is cached")
    parser.add_argument("--out", default="faithfulness-answers.jsonl")
    parser.add_argument("--home", default=None, help="keep the built-in KB in this folder between runs")
    parser.add_argument("--summary-only", action="store_true", help="summarise an existing --out file")
    args = parser.parse_args()
    if not args.summary_only:
        run(args)
    print(json.dumps(summarise(Path(args.out)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

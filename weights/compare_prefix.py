"""The bundled prefix against the base model alone, on the same inputs, in one run.

    python weights/compare_prefix.py [--part heldout|grounded-dev|grounded|all] [--samples 24] [--show 4]

heldout: `birds ptune`'s own evaluation (eval_loss; greedy answers, BLEU-4 and ROUGE-1/2/L on jieba
    tokens against the reference) on the first N records of data/ptune/dev.json, species the tuning never
    saw: bare questions (`birds ask --no-kb`).
grounded-dev: the same evaluation on the first N records of data/ptune/grounded/dev.json: the grounded
    prompts of the held-out species, with the references the grounded set gives them.
grounded: the prompts `birds ask` and `birds identify` build (retrieved card passages, then the
    question): answers to 12 answerable card questions of data/retrieval_gold.jsonl and descriptions of 6
    held-out species in Chinese and English, scored by their overlap with the retrieved passages (BLEU-4,
    ROUGE on jieba tokens): how much of what the model says comes from what it was given.

Prints both sides and writes weights/prefix/comparison.json (the parts it ran). Uses BIRDS_HOME's
converted default model and built-in KB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "weights" / "prefix" / "comparison.json"


def heldout(samples: int, show: int, dev: Path, source: int = 64, target: int = 96) -> dict:
    from birdsdao.language_model.models import load_model
    from birdsdao.language_model.ptune import PtuneConfig, evaluate, load_prefix
    from birdsdao.language_model.ptune_data import read_examples
    from birdsdao.language_model.runtime import BUNDLED_PREFIX
    from birdsdao.settings import load_settings

    marker = json.loads((BUNDLED_PREFIX / "birds_prefix.json").read_text(encoding="utf-8"))
    records = read_examples(dev)[0][:samples]
    config = PtuneConfig(data=dev, output=Path(os.devnull), pre_seq_len=marker["pre_seq_len"],
                         max_source_length=source, max_target_length=target)
    loaded = load_model(None, load_settings().models_dir)
    base_scores, base_rows = evaluate(loaded.model, loaded, records, config)
    tuned_scores, tuned_rows = evaluate(load_prefix(loaded, BUNDLED_PREFIX), loaded, records, config)
    print(f"{dev.relative_to(ROOT)}: {len(records)} validation records")
    print(f"{'':10} {'base':>8} {'prefix':>8}")
    for key in ("eval_loss", "bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        print(f"{key:10} {base_scores[key]:>8.2f} {tuned_scores[key]:>8.2f}")
    answers = [{"prompt": b["prompt"], "reference": b["reference"], "base": b["prediction"],
                "prefix": t["prediction"]} for b, t in zip(base_rows, tuned_rows, strict=True)]
    for row in answers[:show]:
        print(f"\nQ: {row['prompt']}\n  base:   {row['base']}\n  prefix: {row['prefix']}")
    return {"samples": len(records), "base": base_scores, "prefix": tuned_scores, "answers": answers}


def grounded() -> dict:
    from birdsdao.assistant import Assistant, AssistantConfig, ModelChoice
    from birdsdao.assistant.answer import Asker
    from birdsdao.language_model.generate import GenerationSettings
    from birdsdao.language_model.ptune import text_scores
    from birdsdao.prompts import CANNOT_ANSWER, describe_question
    from birdsdao.settings import load_settings
    from birdsdao.species_cards import bundled_cards

    settings = load_settings()
    gold = [json.loads(line) for line in (ROOT / "data" / "retrieval_gold.jsonl").read_text().splitlines()]
    answerable = [g for g in gold if g["kb"] == "cards" and g["answerable"]]
    questions = [g["question"] for lang in ("zh", "en") for g in [g for g in answerable if g["lang"] == lang][:6]]
    cards = bundled_cards()
    by_chinese = {card.chinese_name: species for species, card in cards.items()}
    held_out = []
    for record in json.loads((ROOT / "data" / "ptune" / "dev.json").read_text(encoding="utf-8")):
        match = re.match(r"请告诉我些关于(.+)的知识吧？", record["instruction"])
        if match and match.group(1) in by_chinese and by_chinese[match.group(1)] not in held_out:
            held_out.append(by_chinese[match.group(1)])
    held_out = held_out[:6]

    result: dict = {"questions": questions, "species": held_out}
    for side, no_prefix in (("base", True), ("prefix", False)):
        # the assistant's own retriever and model; the model always writes (this measures the model, not the
        # extractive default), and a refusal is scored as written
        assistant = Assistant(AssistantConfig(settings=settings, method="bm25", generate=True,
                                              model=ModelChoice(no_prefix=no_prefix)))
        model = assistant.model(required=True)
        runs = {}
        texts, passages = [], []
        for question in questions:
            answer, stream = Asker(retrieve=assistant.retriever(), model=model, style="generate",
                                   settings=GenerationSettings(max_new_tokens=80)).ask(question)
            for _ in stream:
                pass
            texts.append(answer.generated or answer.text)  # the model's own text, also where the guard held it back
            passages.append(" ".join(hit.text for hit in answer.hits))
        runs["ask"] = {"scores": text_scores(texts, passages), "answers": texts,
                       "refusals": sum(text.strip() in CANNOT_ANSWER.values() for text in texts)}
        for lang in ("zh", "en"):
            texts, passages = [], []
            for species in held_out:
                card = cards[species]
                asker = Asker(retrieve=assistant.retriever(species=species, lang=lang), model=model, style="generate",
                              settings=GenerationSettings(max_new_tokens=120))
                answer, stream = asker.ask(describe_question(species, card.english_name, card.chinese_name, lang))
                for _ in stream:
                    pass
                texts.append(answer.generated or answer.text)
                passages.append(" ".join(hit.text for hit in answer.hits))
            runs[f"describe_{lang}"] = {"scores": text_scores(texts, passages), "answers": texts,
                                        "refusals": sum(text.strip() == CANNOT_ANSWER[lang] for text in texts)}
        result[side] = runs
    print("grounded: overlap with the retrieved passages")
    print(f"{'':14} {'base R-1':>9} {'prefix R-1':>11} {'base BLEU':>10} {'prefix BLEU':>12} {'refusals':>9}")
    for part in ("ask", "describe_zh", "describe_en"):
        base, tuned = result["base"][part], result["prefix"][part]
        print(f"{part:14} {base['scores']['rouge-1']:>9.1f} {tuned['scores']['rouge-1']:>11.1f} "
              f"{base['scores']['bleu-4']:>10.1f} {tuned['scores']['bleu-4']:>12.1f} "
              f"{base['refusals']:>4}/{tuned['refusals']:<4}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("heldout", "grounded-dev", "grounded", "all"), default="all")
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--show", type=int, default=4)
    args = parser.parse_args()
    result = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {}
    if "answers" in result:  # the first version kept the held-out part at the top level
        result = {"heldout": {key: result[key] for key in ("samples", "base", "prefix", "answers")}}
    if args.part in ("heldout", "all"):
        result["heldout"] = heldout(args.samples, args.show, ROOT / "data" / "ptune" / "dev.json")
    if args.part in ("grounded-dev", "all"):  # the lengths make_prefix.sh tunes and validates with
        result["grounded_dev"] = heldout(args.samples, args.show, ROOT / "data" / "ptune" / "grounded" / "dev.json",
                                         source=320, target=160)
    if args.part in ("grounded", "all"):
        result["grounded"] = grounded()
    OUT.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\n{OUT}")


if __name__ == "__main__":
    main()

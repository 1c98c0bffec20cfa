"""The bundled prefix against the base model alone, on the same held-out validation records.

    python weights/compare_prefix.py [--samples 24] [--show 4]

Scores both with `birds ptune`'s own evaluation (eval_loss; greedy answers, BLEU-4 and ROUGE-1/2/L on
jieba tokens) on the first N records of data/ptune/dev.json (species the tuning never saw), prints the
metrics side by side and a few answers, and writes weights/prefix/comparison.json. Uses BIRDS_HOME's
converted default model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--show", type=int, default=4)
    args = parser.parse_args()
    from birdsdao.settings import load_settings
    from language_model.models import load_model
    from language_model.ptune import PtuneConfig, evaluate, load_prefix
    from language_model.ptune_data import read_examples
    from language_model.runtime import BUNDLED_PREFIX

    marker = json.loads((BUNDLED_PREFIX / "birds_prefix.json").read_text(encoding="utf-8"))
    dev = ROOT / "data" / "ptune" / "dev.json"
    records = read_examples(dev)[0][: args.samples]
    config = PtuneConfig(data=dev, output=Path(os.devnull), pre_seq_len=marker["pre_seq_len"],
                         max_source_length=64, max_target_length=96)
    loaded = load_model(None, load_settings().models_dir)
    base_scores, base_rows = evaluate(loaded.model, loaded, records, config)
    tuned_scores, tuned_rows = evaluate(load_prefix(loaded, BUNDLED_PREFIX), loaded, records, config)
    print(f"{len(records)} validation records (held-out species)")
    print(f"{'':10} {'base':>8} {'prefix':>8}")
    for key in ("eval_loss", "bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        print(f"{key:10} {base_scores[key]:>8.2f} {tuned_scores[key]:>8.2f}")
    for base, tuned in list(zip(base_rows, tuned_rows, strict=True))[: args.show]:
        print(f"\nQ: {base['prompt']}\n  base:   {base['prediction']}\n  prefix: {tuned['prediction']}")
    result = {"samples": len(records), "base": base_scores, "prefix": tuned_scores,
              "answers": [{"prompt": b["prompt"], "reference": b["reference"], "base": b["prediction"],
                           "prefix": t["prediction"]} for b, t in zip(base_rows, tuned_rows, strict=True)]}
    out = BUNDLED_PREFIX / "comparison.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\n{out}")


if __name__ == "__main__":
    main()

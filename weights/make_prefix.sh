#!/usr/bin/env bash
# Recipe of the bundled prefix: P-Tuning v2 of the default Gemma 3 270M on the bundled tuning set, on a CPU.
# Validation: a sample of the held-out species in data/ptune/dev.json. Output: weights/prefix/ (committed:
# the prefix, birds_prefix.json, train_results.json, eval_results.json, generated_predictions.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=weights/work/prefix
birds ptune data/ptune/train.json --val-data data/ptune/dev.json --max-eval-samples "${EVAL:-24}" \
  --pre-seq-len "${PRE_SEQ_LEN:-32}" --lr 2e-2 --max-source-length 64 --max-target-length "${TARGET:-96}" \
  --batch-size 1 --gradient-accumulation-steps "${ACCUMULATION:-4}" --max-steps "${STEPS:-150}" \
  --save-steps 1000 --logging-steps 10 -o "$OUT" --json > weights/work/ptune.json
mkdir -p weights/prefix
for file in adapter_config.json adapter_model.safetensors birds_prefix.json train_results.json eval_results.json \
            generated_predictions.jsonl; do
  cp "$OUT/$file" weights/prefix/
done
python weights/make_manifest.py --prefix  # sha256 and the training record into weights/MANIFEST.json

#!/usr/bin/env bash
# Recipe of the bundled prefix: P-Tuning v2 of the default Gemma 3 270M on a CPU, on the grounded tuning set
# (data/ptune/grounded: the prompts `birds ask` and `identify` send, with retrieved card passages, plus a third
# of the plain records). Validation: the first records of data/ptune/grounded/dev.json, species the tuning
# never saw. Output: weights/prefix/ (committed: the prefix, birds_prefix.json, train_results.json,
# eval_results.json, generated_predictions.jsonl). About 45 minutes on 2 cores; resumable with RESUME=1.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=weights/work/prefix
DATA=data/ptune/grounded
mkdir -p weights/work
birds ptune "$DATA/train.json" --val-data "$DATA/dev.json" --max-eval-samples "${EVAL:-24}" \
  --pre-seq-len "${PRE_SEQ_LEN:-32}" --lr 2e-2 --max-source-length 320 --max-target-length "${TARGET:-160}" \
  --batch-size 1 --gradient-accumulation-steps "${ACCUMULATION:-4}" --max-steps "${STEPS:-200}" \
  --save-steps 50 --logging-steps 10 -o "$OUT" ${RESUME:+--resume} --json > weights/work/ptune.json
mkdir -p weights/prefix
for file in adapter_config.json adapter_model.safetensors birds_prefix.json train_results.json eval_results.json \
            generated_predictions.jsonl; do
  cp "$OUT/$file" weights/prefix/
done
python weights/make_manifest.py --prefix  # sha256 and the training record into weights/MANIFEST.json

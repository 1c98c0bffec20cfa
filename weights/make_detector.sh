#!/usr/bin/env bash
# Recipe of the bundled detector: the project's own pipeline on the mini BIRDS-525 photos in ../shared/data.
#   prepare-data (the 161 listed species) -> train --sparse -> prune -> finetune
# Each step is skipped when its output exists, so an interrupted run resumes: bash weights/make_detector.sh
# Work files go to weights/work/ (ignored by git; BIRDS_HOME points there); weights/make_manifest.py then copies the final weights
# into weights/ and writes weights/MANIFEST.json.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=weights/work
SRC=${BIRDS525:-../shared/data/birds525-mini}
IMGSZ=${IMGSZ:-224}
EPOCHS=${EPOCHS:-40}
FT_EPOCHS=${FT_EPOCHS:-15}
KEEP=${KEEP:-0.6}
DEVICE=${DEVICE:-cpu}
mkdir -p "$WORK"
export BIRDS_HOME="$PWD/$WORK/home"  # runs land in $WORK/home/runs/{train,finetune}/NAME
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }

if [ ! -s "$WORK/prepare.json" ]; then
  log "prepare-data"
  birds prepare-data "$SRC" "$WORK/data" --species-file data/species161.txt --boxes full --overwrite --json > "$WORK/prepare.json"
fi
RUNS="$BIRDS_HOME/runs"
if [ ! -s "$WORK/train.json" ]; then  # written when training finished (best.pt exists after epoch 1)
  log "train --sparse"
  rm -rf "$RUNS/train/sparse"
  birds train "$WORK/data/data.yaml" --model yolov8n.yaml --sparse --epochs "$EPOCHS" --imgsz "$IMGSZ" \
    --batch 16 --workers 2 --device "$DEVICE" --name sparse --json > "$WORK/train.json"
fi
if [ ! -s "$WORK/prune.json" ]; then
  log "prune"
  birds prune "$RUNS/train/sparse/weights/best.pt" --keep "$KEEP" --imgsz "$IMGSZ" --out "$WORK/pruned" \
    --onnx --json > "$WORK/prune.json"
fi
if [ ! -s "$WORK/finetune.json" ]; then
  log "finetune"
  rm -rf "$RUNS/finetune/finetune"
  birds finetune "$WORK/pruned/pruned.pt" --data "$WORK/data/data.yaml" --epochs "$FT_EPOCHS" --imgsz "$IMGSZ" \
    --batch 16 --workers 2 --device "$DEVICE" --name finetune --json > "$WORK/finetune.json"
fi
log "done"

#!/usr/bin/env bash
# Recipe of the bundled species classifier: the project's own pipeline on the mini BIRDS-525 photos in ../shared/data.
#   prepare-data (the 161 listed species; photos 1-3 train, photo 4 val) -> train-classifier --fit-all
# train-classifier scores the head fitted on photos 1-3 on photo 4 (those are the numbers MANIFEST.json keeps),
# then fits the written head on all 4 photos. Features are cached in the dataset folder, so a rerun is quick.
# Work files go to weights/work/ (ignored by git); weights/make_manifest.py --classifier records the result.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=weights/work
SRC=${BIRDS525:-../shared/data/birds525-mini}
BACKBONE=${BACKBONE:-lite0}
mkdir -p "$WORK"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }

if [ ! -s "$WORK/classifier-prepare.json" ]; then
  log "prepare-data (classifier)"
  birds prepare-data "$SRC" "$WORK/classifier-data" --species-file data/species161.txt --boxes full --overwrite --json > "$WORK/classifier-prepare.json"
fi
log "train-classifier"
birds train-classifier "$WORK/classifier-data" --out weights/classifier --backbone "$BACKBONE" --fit-all --overwrite --json > "$WORK/train-classifier.json"
python weights/make_manifest.py --classifier
log "done"

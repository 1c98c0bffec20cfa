#!/usr/bin/env bash
# The CUDA check (docs/gpu.md): the 4/8-bit bases for ptune and answers, the native ChatGLM2 quantized, sparse
# training with AMP, pruning and fine-tuning a CUDA-trained detector, on a GPU machine that reaches no package index.
#
#   bash bench/gpu_check.sh --prepare   # here: fill .gpu/ (ignored) with what the GPU machine lacks
#   bash bench/gpu_check.sh             # there, with .gpu carried: writes pytest.log, gpu_check.{log,json} to $OUT
#
# What .gpu/ holds (it must stay small: the whole working tree travels, 64 MiB at most): the ultralytics wheels,
# bitsandbytes unpacked with only its CPU and CUDA 13 libraries (the GPU machine's torch is built for CUDA 13; the
# wheel's other CUDA builds are 150 MB), the ChatGLM2 reference outputs and a 38-species sample prepared with
# `birds prepare-data`. The real Gemma 3 270M does not fit; a tiny random Gemma 3 stands in for its architecture.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --prepare ]; then
  set -e
  rm -rf .gpu && mkdir -p .gpu/wheels .gpu/bnb .gpu/shared/data
  grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
  platform="--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_24_x86_64"
  # shellcheck disable=SC2086
  version() { pip show "$1" | sed -n 's/^Version: //p'; }
  # the GPU image's transformers (5.17) predates the `cache` names birdsdao needs: 5.24 is the oldest with them,
  # and the newest whose huggingface-hub requirement the image meets (5.25 wants hub 2.x and its httpx2)
  # shellcheck disable=SC2086
  pip download -q --no-deps $platform -d .gpu/wheels "ultralytics==$(version ultralytics)" ultralytics-thop \
    "bitsandbytes==$(version bitsandbytes)" transformers==5.24.0 "peft==$(version peft)"
  (cd .gpu/bnb && python3 -m zipfile -e ../wheels/bitsandbytes-*.whl . && rm ../wheels/bitsandbytes-*.whl &&
   find bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' ! -name '*cuda13*' -delete)
  cp -r ../shared/data/chatglm2-reference .gpu/shared/data/
  grep -v '^#' data/species161.txt | head -n 38 > .gpu/species.txt
  birds prepare-data ../shared/data/birds525-mini .gpu/shared/data/sample --species-file .gpu/species.txt \
    --link copy --labels write
  du -sh .gpu
  exit 0
fi

out=${OUT:-gpu-check-out}
mkdir -p "$out"
[ -d .gpu/wheels ] || { echo "gpu_check: run 'bash bench/gpu_check.sh --prepare' first and carry .gpu" >&2; exit 2; }
rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl || exit 2
export PYTHONPATH="/tmp/site:$PWD/.gpu/bnb" PYTHONUNBUFFERED=1
# The project as the README installs it (editable); its dependencies are on the machine or carried above.
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 2
[ -d ../shared/data ] || { mkdir -p ../shared && cp -r .gpu/shared/data ../shared/; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
python3 -c "import torch, bitsandbytes, ultralytics; print('torch', torch.__version__, 'bnb', bitsandbytes.__version__,
'ultralytics', ultralytics.__version__)" | tee -a "$out/nvidia-smi.txt"
start=$SECONDS
# a test still running after 45 s prints where it is (faulthandler), so one run on the machine says enough
timeout 200 python3 -m pytest -v -p no:cacheprovider -rs --durations=15 -o faulthandler_timeout=45 tests/test_cuda.py \
  tests/test_quantized_bases.py tests/test_chatglm2_reference.py 2>&1 | tee "$out/pytest.log"
echo "pytest: $((SECONDS - start)) s" | tee -a "$out/pytest.log"
timeout 150 python3 bench/gpu_check.py --data .gpu/shared/data/sample/data.yaml --out "$out/gpu_check.json" 2>&1 \
  | tee "$out/gpu_check.log"
echo "gpu_check: $((SECONDS - start)) s in all" | tee -a "$out/gpu_check.log"

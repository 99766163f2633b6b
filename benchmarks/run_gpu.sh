#!/usr/bin/env bash
# One short session on a lent GPU machine: the evaluation and generation benchmarks on CUDA.
# Results go to $OUT (the device tool's folder) or benchmarks/results. Wheels the machine lacks
# (diffusers) travel in .whl/, see benchmarks/README.md.
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
timeout 150 python3 -m benchmarks eval --device cuda --out "$OUT" 2>&1 | tee "$OUT/evaluation.log"
timeout 330 python3 -m benchmarks --device cuda --out "$OUT" 2>&1 | tee "$OUT/generation.log"

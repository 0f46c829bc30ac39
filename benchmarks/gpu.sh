#!/usr/bin/env bash
# Benchmarks 2 (engine throughput against batch size) and 3 (cookbook loop against docparse) on one
# CUDA GPU, sized for an H100 80 GB to finish inside 8 minutes; results go to benchmarks/RESULTS.md.
#   benchmarks/gpu.sh            # on the GPU machine, from anywhere
#   benchmarks/gpu.sh --dry-run  # the same steps on the tiny model on CPU, printing only (seconds)
# The 3B model is the published Qwen2.5-VL-3B shape with random weights, built on the GPU in bfloat16
# (no download). Pages are at docparse's default bounds (2048 image tokens). Each step has its own
# time limit so that one slow step cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if [ "${1:-}" = "--dry-run" ]; then
    set -e
    $PY -m benchmarks.engine --arch tiny --device cpu --batches 1,2 --new-tokens 4 --no-write
    $PY -m benchmarks.baseline --arch tiny --device cpu --pages 2 --new-tokens 4 --no-write
    $PY -m benchmarks.engine --arch tiny --device cpu --batches 1 --new-tokens 4 --cache static --no-write
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.memory --format=csv || true
status=0
# 2: about 2 minutes (64 pages of prefill, 128 decode steps at each size).
timeout 200 $PY -m benchmarks.engine --arch 3b --device cuda --batches 1,8,32,64 --new-tokens 128 \
    --max-pixels 1605632 --warmup || status=1
# 3: about 2.5 minutes (32 pages one at a time, then one call at the auto batch size).
timeout 200 $PY -m benchmarks.baseline --arch 3b --device cuda --pages 32 --new-tokens 128 \
    --max-pixels 1605632 || status=1
# Static KV cache (transformers then compiles the decode step): worth keeping only if it beats dynamic.
timeout 80 $PY -m benchmarks.engine --arch 3b --device cuda --batches 1,32 --new-tokens 128 \
    --max-pixels 1605632 --warmup --cache static || status=1
exit $status

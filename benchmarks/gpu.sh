#!/usr/bin/env bash
# Benchmarks 2 (engine throughput against batch size), 3 (cookbook loop against docparse) and the vLLM
# engine against the transformers engine (pages/s, decode tokens/s against the weight-bandwidth roofline)
# on one CUDA GPU, sized for an H100 80 GB to finish inside 8 minutes; results go to benchmarks/RESULTS.md
# and benchmarks/RESULTS-vllm.md. The vLLM step needs vLLM installed (docparse[vllm] in this venv, or a
# venv of its own named by DOCPARSE_VLLM_PYTHON).
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
    $PY -m benchmarks.vllm_engine --arch tiny --device cpu --in-flight 1,2 --new-tokens 4 --no-write
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.memory --format=csv || true
status=0
# 2: about 2 minutes (64 pages of prefill, 128 decode steps at each size).
timeout 150 $PY -m benchmarks.engine --arch 3b --device cuda --batches 1,8,32,64 --new-tokens 128 \
    --max-pixels 1605632 --warmup || status=1
# 3: about 2 minutes (32 pages one at a time, then one call at the auto batch size): the cookbook's loop.
timeout 150 $PY -m benchmarks.baseline --arch 3b --device cuda --pages 32 --new-tokens 128 \
    --max-pixels 1605632 || status=1
# vLLM against transformers, both through docparse's engines: 1 and 64 pages in flight, the 3B shape
# (about 3 minutes: a 7.5 GB checkpoint written, loaded twice, vLLM's CUDA-graph capture). The static-KV
# step of earlier runs is left out for its time (benchmarks.engine --cache static).
timeout 180 $PY -m benchmarks.vllm_engine --arch 3b --device cuda --in-flight 1,64 --new-tokens 128 \
    --max-pixels 1605632 || status=1
exit $status

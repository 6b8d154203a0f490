#!/usr/bin/env bash
# The serving engine's decode, measured twice in one call on ONE H200 with run1's code path (varlen attention for
# every batch, layer maths in TorchSharp ops), to separate code changes from run-to-run variance (writes under $OUT):
# decode-check.log, a-32k.md, a-128k.md, b-32k.md, b-128k.md.
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/decode-check.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
nproc; uptime
for run in a b; do
  timeout 90 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-steps 32 --decode-context 32k --decode-batch 1,4 --out /tmp/$run-32k 2>&1 | grep "batch"
  timeout 60 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-steps 32 --decode-context 128k --decode-batch 1 --out /tmp/$run-128k 2>&1 | grep "batch"
  cp /tmp/$run-32k/bench.md "$OUT/$run-32k.md"; cp /tmp/$run-128k/bench.md "$OUT/$run-128k.md"
done
echo "done at ${SECONDS}s"

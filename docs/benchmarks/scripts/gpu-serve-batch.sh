#!/usr/bin/env bash
# Issue "a serving engine" point 2: a host's concurrent queries decode as one batch per layer (DecodeBatcher).
# Device run on ONE H200 (writes under $OUT): serve.log (everything printed), serve.json/md (apb bench --serve-queries):
# Llama-3.1-8B shape, random bf16, APB on 2 virtual hosts sharing the GPU, 1, 4 and 8 queries of 32K tokens started
# together, each its own collectives and KV; decode batched across a host's queries off, on (no wait) and on with a
# 0.5 ms hold for queries still waiting on their peers; then serve-1host.json/md: one host, 1 and 8 queries of 16K.
# (The committed run made the one-host part as a second call on the warm machine, with the same command.)
# Run: BUNDLE_APPS="src/ApbCluster.Cli" bash scripts/gpu-bundle.sh, then on the device:
#   OUT=$OUT bash docs/benchmarks/scripts/gpu-serve-batch.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/serve.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
timeout 200 "$APB_BIN/apb" bench --shape llama-3.1-8b --serve-queries 1,4,8 --serve-context 32k --hosts 2 --decode-steps 32 \
  --serve-batch-wait 0,0.5 --out /tmp/serve 2>&1
cp /tmp/serve/bench.json "$OUT/serve.json"; cp /tmp/serve/bench.md "$OUT/serve.md"
echo "serve done at ${SECONDS}s"
# The same on ONE host (no collective between hosts): 1 and 8 queries of 16K.
timeout 100 "$APB_BIN/apb" bench --shape llama-3.1-8b --serve-queries 1,8 --serve-context 16k --hosts 1 --decode-steps 32 \
  --serve-batch-wait 0 --out /tmp/serve-1host 2>&1 | grep -v "^|"
cp /tmp/serve-1host/bench.json "$OUT/serve-1host.json"; cp /tmp/serve-1host/bench.md "$OUT/serve-1host.md"
echo "one-host serve done at ${SECONDS}s"

#!/usr/bin/env bash
# Issue "a serving engine" (decode after the layer maths moved into TorchScript) and issue "ShadowKV" (resident 128K
# queries and their batched decode), device run on ONE H200 (writes under $OUT):
#   serving2.log      everything printed
#   decode-32k.*      batched decode, full KV, 32K context at batch 1, 4, 16 (per-phase profile per row)
#   decode-128k.*     128K context: full KV at batch 1 and at as many as fit; ShadowKV (values on the GPU) the same
#   gpu-tests.log     the model's GPU tests (fused and ragged kernels) and the strategies' (virtual hosts on one GPU,
#                     lossless APB vs dense in bf16), last, in the time left
# Run: BUNDLE_APPS="src/ApbCluster.Cli tests/ApbCluster.Model.Tests tests/ApbCluster.Parallel.Tests" bash scripts/gpu-bundle.sh,
# then on the device: OUT=$OUT bash docs/benchmarks/scripts/gpu-serving2.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/serving2.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
common=(--shape llama-3.1-8b --decode-steps 32)

echo "== decode 32K, full KV, batch 1, 4, 16"
timeout 120 "$APB_BIN/apb" bench "${common[@]}" --decode-context 32k --decode-batch 1,4,16 --out "$OUT/decode-32k" 2>&1 | grep -v "^|"
echo "== decode 128K, full KV, batch 1 and max"
timeout 150 "$APB_BIN/apb" bench "${common[@]}" --decode-context 128k --decode-batch 1,max --out "$OUT/decode-128k-full" 2>&1 | grep -v "^|"
echo "== decode 128K, ShadowKV (defaults, values on the GPU), batch 1 and max"
timeout 200 "$APB_BIN/apb" bench "${common[@]}" --decode-context 128k --decode-batch 1,max --kv shadowkv --out "$OUT/decode-128k-shadowkv" 2>&1 | grep -v "^|"
for d in decode-32k decode-128k-full decode-128k-shadowkv; do echo "## $d"; grep "^|" "$OUT/$d/bench.md"; grep "^- " "$OUT/$d/bench.md"; done
echo "decode done at ${SECONDS}s"

echo "== GPU tests"
timeout 40 "$APB_BIN/ApbCluster.Model.Tests" -trait Category=Gpu > "$OUT/gpu-tests.log" 2>&1
left=$((560 - SECONDS)); [ $left -lt 20 ] && left=20
timeout $left "$APB_BIN/ApbCluster.Parallel.Tests" -trait Category=Gpu -class "ApbCluster.Parallel.Tests.Gpu.VirtualHostsOnOneGpuTests" \
  -class "ApbCluster.Parallel.Tests.Gpu.ApbTwoGpuTests" -class "ApbCluster.Parallel.Tests.Gpu.ApbAttentionGpuTests" >> "$OUT/gpu-tests.log" 2>&1
grep -E "Total:|\[FAIL\]" "$OUT/gpu-tests.log" | head -20
echo "all done at ${SECONDS}s"

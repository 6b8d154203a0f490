#!/usr/bin/env bash
# Issue "a serving engine" (fast decode, batched decode) and issue "CritiPrefill" (prefill after the fused
# projections), device run on ONE H200 (writes under $OUT):
#   serving.log     everything printed
#   gpu-tests.log   the GPU tests of the model (fused/ragged kernels) and of the parallel strategies (fused projections
#                   and joint RoPE on CUDA: lossless APB vs dense in bf16, kernels)
#   decode.json/md  apb bench: batched decode, Llama-3.1-8B shape, random bf16, 32K context at batch 1, 4, 16 and
#                   128K at batch 1 (each sequence its own prefilled random prompt)
#   hf-32k.json, hf-128k.json   transformers' (sdpa) decode on the same machine at 32K and 128K
#   prefill.json/md dense and dense-criti prefill at 128K (phases), after the fused projections
# Run: BUNDLE_APPS="src/ApbCluster.Cli tests/ApbCluster.Model.Tests tests/ApbCluster.Parallel.Tests" bash scripts/gpu-bundle.sh,
# then on the device: OUT=$OUT bash docs/benchmarks/scripts/gpu-serving.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/serving.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

echo "== GPU tests"
timeout 60 "$APB_BIN/ApbCluster.Model.Tests" -trait Category=Gpu > "$OUT/gpu-tests.log" 2>&1
timeout 150 "$APB_BIN/ApbCluster.Parallel.Tests" -trait Category=Gpu >> "$OUT/gpu-tests.log" 2>&1
grep -E "Total:|\[FAIL\]|error" "$OUT/gpu-tests.log" | head -20
echo "tests done at ${SECONDS}s"

echo "== decode: 32K at batch 1, 4, 16; 128K at batch 1"
timeout 200 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-context 32k --decode-batch 1,4,16 --decode-steps 32 --out /tmp/d32 2>&1 | grep -v "^|"
timeout 120 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-context 128k --decode-batch 1 --decode-steps 32 --out /tmp/d128 2>&1 | grep -v "^|"
python3 - /tmp/d32/bench.json /tmp/d128/bench.json "$OUT/decode.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a["Decode"] += b["Decode"]; a["Notes"] += [n for n in b["Notes"] if n not in a["Notes"]]; a["Command"] += " ; " + b["Command"]
json.dump(a, open(sys.argv[3], "w"), indent=1)
PY
{ cat /tmp/d32/bench.md; echo; echo "## 128K"; echo; grep "^|" /tmp/d128/bench.md; } > "$OUT/decode.md"
echo "decode done at ${SECONDS}s"

echo "== transformers decode (sdpa, eager loop) at 32K and 128K"
for n in 32768 131072; do
  timeout 100 python3 docs/benchmarks/scripts/hf_reference.py bench --lengths 1024 --reps 0 --decode-context $n \
    --decode-steps 16 --out "$OUT/hf-$((n / 1024))k.json" 2>&1 | grep -v Warning | tail -2
done
echo "hf done at ${SECONDS}s"

echo "== prefill 128K: dense and dense-criti (phases), fused projections"
timeout 150 "$APB_BIN/apb" bench --shape llama-3.1-8b --lengths 128k --modes dense,dense-criti --warmup 1 --repeats 2 --out /tmp/p128 2>&1 | grep -v "^|"
cp /tmp/p128/bench.json "$OUT/prefill.json"; cp /tmp/p128/bench.md "$OUT/prefill.md"
echo "all done at ${SECONDS}s"

#!/usr/bin/env bash
# Issues "ShadowKV" and "CritiPrefill", accuracy on ONE H200 (writes under $OUT): the shipped demo model at 16K
# tokens, H = 4 virtual hosts, 50 samples per task on seed 2027 (not used before), modes dense, dense-criti,
# dense-shadowkv, apb-retaining, apb-criti, apb-shadowkv (defaults of each; note the demo model has 2 KV heads of 32,
# so ShadowKV's rank 160 keeps its keys whole and only the sparse selection can lose accuracy), paired differences
# with 95 % intervals: eval.json, eval.md, accuracy.log. Then the serving engine's decode after the layer maths went back
# to TorchSharp ops and one sequence's attention to the split-KV flash call: decode-32k.md (batch 1, 4, 16),
# decode-128k.md (batch 1).
# Run: the bundle as for gpu-serving2.sh, then on the device: OUT=$OUT bash docs/benchmarks/scripts/gpu-accuracy.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/accuracy.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
timeout ${EVAL_TIMEOUT:-360} "$APB_BIN/apb" eval --model src/ApbCluster.Cli/demo-model --device cuda \
  --tasks single-needle,multi-key,multi-value,variable-tracking --lengths 16k --hosts 4 \
  --modes dense,dense-criti,dense-shadowkv,apb-retaining,apb-criti,apb-shadowkv --samples ${SAMPLES:-50} --seed 2027 \
  --time-limit ${TIME_LIMIT:-330} --out /tmp/eval 2>&1 | tail -60
cp /tmp/eval/eval.json "$OUT/eval.json" 2>/dev/null; cp /tmp/eval/eval.md "$OUT/eval.md" 2>/dev/null
echo "eval done at ${SECONDS}s"
timeout 100 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-steps 32 --decode-context 32k --decode-batch 1,4,16 --out /tmp/d32 2>&1 | grep -v "^|"
timeout 60 "$APB_BIN/apb" bench --shape llama-3.1-8b --decode-steps 32 --decode-context 128k --decode-batch 1 --out /tmp/d128 2>&1 | grep -v "^|"
cp /tmp/d32/bench.md "$OUT/decode-32k.md"; cp /tmp/d128/bench.md "$OUT/decode-128k.md"
grep "^|" "$OUT/decode-32k.md" "$OUT/decode-128k.md"
echo "done at ${SECONDS}s"

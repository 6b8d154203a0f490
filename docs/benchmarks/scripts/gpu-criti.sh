#!/usr/bin/env bash
# Issue "CritiPrefill inside every host", device acceptance on ONE H200 (writes under $OUT). Two parts, one device
# call each (a call is cut at 600 s):
#   PART=speed (default): criti.log, dense.json/md (dense vs dense-criti at 32K/64K/128K, one GPU), apb.json/md
#     (apb vs apb-criti at 32K/128K, 2 virtual hosts sharing the GPU, per phase, criticality its own phase), hf.json
#     (transformers' dense prefill on the same machine). Llama-3.1-8B shape, random bf16, CritiPrefill defaults
#     (segment 512, block 32, budget 2048, threshold 4096), 1 warm-up + 3 timed repeats, one process per configuration.
#   PART=accuracy: eval.json/md: the demo model at 16K, H = 4, 25 samples per task, dense, dense-criti,
#     apb-retaining, apb-criti (defaults as above); and variants.md/json: issue "truth"'s 128K APB anchor and split
#     variants on the fixed timeline.
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/criti-${PART:-speed}.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
common=(--shape llama-3.1-8b --gpus 1 --warmup 1 --repeats 3 --collective-timeout 60)
md() { grep "^|" "$1/bench.md"; }
if [ "${PART:-speed}" = speed ]; then
  echo "== dense vs dense-criti, one GPU"
  timeout 280 "$APB_BIN/apb" bench "${common[@]}" --lengths 32k,64k,128k --modes dense,dense-criti --out /tmp/dense 2>&1 | grep -v "^|"
  cp /tmp/dense/bench.json "$OUT/dense.json"; cp /tmp/dense/bench.md "$OUT/dense.md"
  echo "== apb vs apb-criti, 2 hosts on the GPU (at ${SECONDS}s)"
  timeout 200 "$APB_BIN/apb" bench "${common[@]}" --hosts 2 --lengths 32k,128k --modes apb,apb-criti --out /tmp/apb 2>&1 | grep -v "^|"
  cp /tmp/apb/bench.json "$OUT/apb.json"; cp /tmp/apb/bench.md "$OUT/apb.md"
  echo "== transformers dense prefill (at ${SECONDS}s)"
  timeout 100 python3 docs/benchmarks/scripts/hf_reference.py bench --lengths 32768,65536,131072 --reps 1 --decode-context 1024 \
    --decode-steps 4 --out "$OUT/hf.json" 2>&1 | grep -v Warning
else
  echo "== accuracy: demo model, 16K, H = 4"
  timeout 330 "$APB_BIN/apb" eval --model src/ApbCluster.Cli/demo-model --device cuda --tasks single-needle,multi-key,multi-value,variable-tracking \
    --lengths 16k --hosts 4 --modes dense,dense-criti,apb-retaining,apb-criti --samples 25 --seed 2026 --time-limit 300 --out /tmp/eval 2>&1 | tail -40
  cp /tmp/eval/eval.json "$OUT/eval.json" 2>/dev/null; cp /tmp/eval/eval.md "$OUT/eval.md" 2>/dev/null
  echo "== truth: 128K apb variants on the fixed timeline (at ${SECONDS}s)"
  : > "$OUT/variants.md"
  for variant in "" "--anchor-divisor 4" "--split equal"; do
    dir=/tmp/v-$(echo "x$variant" | tr -cd 'a-z0-9')
    # shellcheck disable=SC2086
    timeout 120 "$APB_BIN/apb" bench "${common[@]}" --hosts 2 --lengths 128k --modes apb $variant --out "$dir" 2>&1 | grep -v "^|"
    { echo "### apb ${variant:-(served defaults)}"; echo; md "$dir"; echo; } >> "$OUT/variants.md"
    python3 -c "import json,sys; d=json.load(open('$dir/bench.json')); print(json.dumps({'variant': '${variant:-default}', 'prefill': d['Prefill']}))" >> "$OUT/variants.jsonl"
  done
fi
echo "done at ${SECONDS}s"

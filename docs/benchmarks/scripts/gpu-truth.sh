#!/usr/bin/env bash
# Issue "the served path and the measurements tell the truth", device acceptance on ONE H200 (writes under $OUT):
#   truth.log       everything printed: hardware, the GPU tests' figures, the bench progress lines
#   gpu-tests.log   the Parallel.Tests GPU tests in full: lossless APB vs dense in bf16 at 8K with 2 and 4 virtual
#                   hosts on the GPU (fp32 merges), both APB kernels vs the explicit mask, virtual hosts on one GPU
#   bench.json/md   apb bench, Llama-3.1-8B shape, random bf16, 2 virtual hosts sharing the GPU: 32K every mode,
#                   128K dense and apb (served defaults: anchor block/8, cost-balanced split), with the cost model's
#                   calibration on this GPU
#   variants.md     128K apb with the paper's anchor (block/4) and with equal blocks
# Every (mode, length) runs in its own process (per-configuration GPU memory), one warm-up and 3 timed repeats on
# persistent rank threads; the phase run lets the two hosts take turns on the GPU, so "projected" is the wall time
# one GPU per host would give (the sum over collective steps of the slower host's compute).
# Run: bash scripts/gpu-bundle.sh with BUNDLE_APPS="src/ApbCluster.Cli tests/ApbCluster.Parallel.Tests", then on the
# device: OUT=$OUT bash docs/benchmarks/scripts/gpu-truth.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/truth.log") 2>&1
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

echo "== GPU tests (lossless bf16 after the fp32 merges; kernels)"
timeout 180 "$APB_BIN/ApbCluster.Parallel.Tests" -trait Category=Gpu -verbose -showLiveOutput > "$OUT/gpu-tests.log" 2>&1
grep -E "Total:|\[FAIL\]|relative error|greedy|passing:|kernel" "$OUT/gpu-tests.log" | head -40
echo "tests done at ${SECONDS}s"

common=(--shape llama-3.1-8b --gpus 1 --hosts 2 --warmup 1 --repeats 3 --collective-timeout 60)
echo "== bench: 32K every mode, 128K dense and apb, cost calibration"
timeout ${BENCH_TIMEOUT:-330} "$APB_BIN/apb" bench "${common[@]}" --lengths 32k --modes dense,ring,ulysses,star,apb --calibrate --out /tmp/b32 2>&1 | grep -v "^|"
timeout ${BENCH_TIMEOUT:-330} "$APB_BIN/apb" bench "${common[@]}" --lengths 128k --modes dense,apb --out /tmp/b128 2>&1 | grep -v "^|"
python3 - /tmp/b32/bench.json /tmp/b128/bench.json "$OUT/bench.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a["Prefill"] += b["Prefill"]; a["Notes"] += [n for n in b["Notes"] if n not in a["Notes"]]; a["Command"] += " ; " + b["Command"]
json.dump(a, open(sys.argv[3], "w"), indent=1)
PY
{ cat /tmp/b32/bench.md; echo; echo "## 128K"; echo; grep "^|" /tmp/b128/bench.md; } > "$OUT/bench.md"
echo "bench done at ${SECONDS}s"

echo "== 128K apb variants"
: > "$OUT/variants.md"
for variant in "--anchor-divisor 4" "--split equal"; do
  dir=/tmp/v-$(echo "$variant" | tr -cd 'a-z0-9')
  # shellcheck disable=SC2086
  timeout 150 "$APB_BIN/apb" bench "${common[@]}" --lengths 128k --modes apb $variant --out "$dir" 2>&1 | grep -v "^|"
  { echo "### apb $variant"; echo; grep "^|" "$dir/bench.md"; echo; } >> "$OUT/variants.md"
done
echo "all done at ${SECONDS}s"

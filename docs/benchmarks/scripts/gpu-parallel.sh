#!/usr/bin/env bash
# Issue "APB and its baselines", GPU acceptance on a 2-GPU machine (writes under $OUT, 7 files):
#  1. GPU tests of Parallel.Tests (Category=Gpu): NCCL collectives and watchdog, APB kernels vs the
#     explicit mask in bf16, lossless APB over NCCL vs dense in bf16 at 8K (parallel-tests.log);
#  2. prefill of dense (1 GPU) and ring, ulysses, star, apb (2 GPUs, NCCL) at 32K/64K/128K,
#     Llama-3.1-8B shape, paper defaults (bench.json/md/png, bench.log);
#  3. APB variants (anchor block/8 and/or the cost-balanced split; VARIANT_LENGTHS) (variants.md/log).
# Env: GPUS (2), HOSTS (2), LENGTHS (32k,64k,128k), VARIANT_LENGTHS (32k,64k,128k), REPEATS (timed runs after one
# warm-up, best reported; 1), BENCH_TIMEOUT (seconds for step 2; 420). Collectives time out after 30 s; a mode
# whose first attempt fails is retried once on new communicators, and the results say so. SKIP_TESTS=1 skips step 1;
# VARIANTS ('--balanced;--anchor-divisor 8 --balanced') lists step 3's variants, ';'-separated.
set -uo pipefail
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
GPUS=${GPUS:-2}; HOSTS=${HOSTS:-2}; REPEATS=${REPEATS:-1}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nvidia-smi topo -m; } > "$OUT/bench.log" 2>&1
cat "$OUT/bench.log"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== GPU tests"
  timeout 240 "$APB_BIN/ApbCluster.Parallel.Tests" -trait Category=Gpu -verbose -showLiveOutput > "$OUT/parallel-tests.log" 2>&1
  grep -E "Total:|\[FAIL\]|kernel|host [01]:|greedy|passing:|relative error|max abs" "$OUT/parallel-tests.log" | grep -v "^\s*$" | head -60
fi

echo "== bench: every mode, paper defaults"
timeout "${BENCH_TIMEOUT:-420}" "$APB_BIN/apb" bench --shape llama-3.1-8b --lengths "${LENGTHS:-32k,64k,128k}" --modes dense,ring,ulysses,star,apb \
  --gpus "$GPUS" --hosts "$HOSTS" --warmup 1 --repeats "$REPEATS" --collective-timeout 30 --out /tmp/bench2 2>&1 | tee -a "$OUT/bench.log" | grep -v "^|"
cp /tmp/bench2/bench.* "$OUT/" 2>/dev/null

echo "== bench: APB variants"
: > "$OUT/variants.log"
IFS=';' read -ra variants <<< "${VARIANTS:---balanced;--anchor-divisor 8 --balanced}"
for variant in "${variants[@]}"; do
  dir=/tmp/variant-$(echo "$variant" | tr -cd 'a-z0-9')
  echo "-- apb $variant" | tee -a "$OUT/variants.log"
  # shellcheck disable=SC2086
  timeout 150 "$APB_BIN/apb" bench --shape llama-3.1-8b --lengths "${VARIANT_LENGTHS:-32k,64k,128k}" --modes apb $variant \
    --gpus "$GPUS" --hosts "$HOSTS" --warmup 1 --repeats "$REPEATS" --collective-timeout 30 --out "$dir" 2>&1 | tee -a "$OUT/variants.log" | grep -v "^|"
  { echo; echo "### apb $variant"; echo; grep "^|" "$dir/bench.md"; } >> "$OUT/variants.md" 2>/dev/null
done

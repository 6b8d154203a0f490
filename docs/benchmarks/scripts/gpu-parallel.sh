#!/usr/bin/env bash
# Issue "APB and its baselines", GPU acceptance on a 2-GPU machine (writes under $OUT):
#  1. NCCL tests and lossless APB over NCCL vs dense in bf16 at 8K (Parallel.Tests, Category=Gpu);
#  2. prefill of dense (1 GPU) and ring, ulysses, star, apb (2 GPUs, NCCL) at 32K/64K/128K, Llama-3.1-8B shape.
set -uo pipefail
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/bench.log"
timeout 200 "$APB_BIN/ApbCluster.Parallel.Tests" -trait Category=Gpu -verbose > "$OUT/parallel-tests.log" 2>&1
grep -E "Total:|\[FAIL\]|host [01]:|greedy|passing:" "$OUT/parallel-tests.log"
timeout 330 "$APB_BIN/apb" bench --shape llama-3.1-8b --lengths ${LENGTHS:-32k,64k,128k} --modes dense,ring,ulysses,star,apb \
  --gpus ${GPUS:-2} --hosts ${HOSTS:-2} --warmup 1 --repeats 1 --out /tmp/bench2 2>&1 | tee -a "$OUT/bench.log" | grep -v "^|"
cp /tmp/bench2/bench.* "$OUT/" 2>/dev/null

#!/usr/bin/env bash
# Issue "Foundation", GPU acceptance, on one GPU of the device machine (writes under $OUT):
#  1. GPU tests of the model layer;
#  2. our logits vs Hugging Face transformers on the same random checkpoints (tiny Llama / Qwen2 in
#     fp32 with 32 greedy steps and in bf16; Llama-3.1-8B shape in bf16);
#  3. dense prefill 32K/64K/128K and decode at 32K: ours and transformers (SDPA) in the same run.
# Usage: bash docs/benchmarks/scripts/gpu-foundation.sh [tests|compare|bench|all]
set -uo pipefail
what=${1:-all}
source scripts/gpu-env.sh .device/apb-gpu.tar.xz
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=docs/benchmarks/scripts/hf_reference.py
W=/tmp/apbw; mkdir -p $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/foundation.log"
python3 -c 'import torch,transformers;print("torch",torch.__version__,"transformers",transformers.__version__)' | tee -a "$OUT/foundation.log"

if [[ $what == tests || $what == all ]]; then
  "$APB_BIN/ApbCluster.Model.Tests" -trait Category=Gpu 2>&1 | tee "$OUT/gpu-model-tests.log" | tail -3
fi

if [[ $what == compare || $what == all ]]; then
  python3 -c 'import random;random.seed(7);print(",".join(str(random.randrange(3,1000)) for _ in range(200)))' > $W/ids-tiny.txt
  python3 -c 'import random;random.seed(7);print(",".join(str(random.randrange(3,128000)) for _ in range(1024)))' > $W/ids-8b.txt
  for kind in llama qwen2; do
    python3 $S make --kind $kind --out $W/$kind --dtype float32 >> "$OUT/foundation.log"
    for dt in float32 bfloat16; do
      steps=$([[ $dt == float32 ]] && echo 32 || echo 0)
      "$APB_BIN/apb" logits --model $W/$kind --ids @$W/ids-tiny.txt --device cuda --dtype $dt --greedy $steps --out $W/$kind-$dt.safetensors 2>> "$OUT/foundation.log"
      python3 $S compare --model $W/$kind --ours $W/$kind-$dt.safetensors --ids $W/ids-tiny.txt --dtype $dt --steps $steps --out $W/c.json | tee -a "$OUT/compare.jsonl"
    done
  done
  python3 $S make --kind llama-3.1-8b --out $W/l8b --dtype bfloat16 >> "$OUT/foundation.log"
  "$APB_BIN/apb" logits --model $W/l8b --ids @$W/ids-8b.txt --device cuda --dtype bfloat16 --out $W/l8b.safetensors 2>> "$OUT/foundation.log"
  python3 $S compare --model $W/l8b --ours $W/l8b.safetensors --ids $W/ids-8b.txt --dtype bfloat16 --out $W/c.json | tee -a "$OUT/compare.jsonl"
  rm -rf $W/l8b
fi

if [[ $what == bench || $what == all ]]; then
  "$APB_BIN/apb" bench --shape llama-3.1-8b --lengths 32k,64k,128k --modes dense --gpus 1 --warmup 1 --repeats 2 \
     --decode-context 32k --decode-steps 32 --out $W/bench 2>&1 | tee -a "$OUT/foundation.log"
  cp $W/bench/bench.json "$OUT/ours-bench.json"; cp $W/bench/bench.md "$OUT/ours-bench.md"
  python3 $S bench --lengths 32768,65536,131072 --decode-context 32768 --decode-steps 32 --reps 2 --out "$OUT/hf-bench.json" 2>&1 | tee -a "$OUT/foundation.log"
fi

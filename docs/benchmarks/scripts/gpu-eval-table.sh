#!/usr/bin/env bash
# Issue "task quality", the accuracy table: the demo model at two lengths, H = 2, 4, 8 virtual hosts, every mode
# (dense, star, apb-query, apb-retaining, apb-random and the ablations apb-no-anchor, apb-no-passing, apb-plain-anchor), all four
# tasks, SAMPLES samples a cell, split over SHARDS `apb eval --shard I/N` processes sharing the GPU (a small model
# leaves the GPU mostly idle: the host-side work is what parallelises), then `apb eval merge`.
# Writes under $OUT: eval.md, eval.json, eval.png (merged), eval.log (this script's output and each shard's tail).
# Usage (repository root, after scripts/gpu-bundle.sh built .device/apb-gpu.tar.xz):
#   bash docs/benchmarks/scripts/gpu-eval-table.sh [MODEL_DIR]
#   (default: the demo model in the bundle, present when it was built with BUNDLE_DEMO_MODEL=1)
# Settings: BUNDLE (.device/apb-gpu.tar.xz), SAMPLES (100), LENGTHS (8k,16k), HOSTS (2,4,8), SHARDS (14), OMP_NUM_THREADS (1), DEVICE (cuda), BUDGET seconds (540).
# On a CPU with a local build (the 100-sample table in docs/benchmarks/demo-model-cpu-table, 2 cores, ~80 min):
#   APB_BIN=src/ApbCluster.Cli/bin/Release/net10.0 DEVICE=cpu LENGTHS=1k,2k SHARDS=2 BUDGET=6000 OUT=DIR \
#   bash docs/benchmarks/scripts/gpu-eval-table.sh
# (a dry run: SAMPLES=2 LENGTHS=2k HOSTS=2).
set -uo pipefail
DEVICE=${DEVICE:-cuda}; SAMPLES=${SAMPLES:-100}; LENGTHS=${LENGTHS:-8k,16k}; HOSTS=${HOSTS:-2,4,8}
SHARDS=${SHARDS:-14}; BUDGET=${BUDGET:-540}
# One CPU thread per shard for libtorch's host-side work: the shards themselves fill the cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODES=${MODES:-dense,star,apb-query,apb-retaining,apb-random,apb-no-anchor,apb-no-passing,apb-plain-anchor}
if [[ $DEVICE == cuda ]]; then source scripts/gpu-env.sh "${BUNDLE:-.device/apb-gpu.tar.xz}"; fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/eval.log") 2>&1
MODEL=${1:-$APB_BIN/demo-model}
[[ -f $MODEL/config.json ]] || { echo "no model at $MODEL (pass MODEL_DIR, or build the bundle with BUNDLE_DEMO_MODEL=1)"; exit 2; }
W=/tmp/apb-eval-table; rm -rf $W; mkdir -p $W
echo "$(date +%T) model $MODEL, $SAMPLES samples x tasks x lengths $LENGTHS, hosts $HOSTS, modes $MODES, $SHARDS shards on $DEVICE, budget ${BUDGET}s"
[[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "cpus $(nproc --all)"

pids=()
for ((i = 0; i < SHARDS; i++)); do
  # --time-limit: a shard that would run long starts no sample it cannot finish in time and writes what it has (the
  # same samples in every cell; the merged report says how many); timeout is only the backstop.
  timeout "$BUDGET" "$APB_BIN/apb" eval --model "$MODEL" --lengths "$LENGTHS" --hosts "$HOSTS" --modes "$MODES" \
    --samples "$SAMPLES" --device "$DEVICE" --shard "$i/$SHARDS" --time-limit "$((BUDGET - 30))" \
    --out "$W/shard-$i" > "$W/shard-$i.out" 2> "$W/shard-$i.err" &
  pids+=($!)
done
wait "${pids[@]}" # not a bare wait: that would also wait for the tee behind exec, forever
for ((i = 0; i < SHARDS; i++)); do
  if [[ -f $W/shard-$i/eval.json ]]; then echo "shard $i: $(tail -1 "$W/shard-$i.err")"
  else echo "shard $i FAILED:"; grep -v "^frame #" "$W/shard-$i.err" | tail -5; fi
done
"$APB_BIN/apb" eval merge "$W"/shard-*/ --out "$W/merged"
cp "$W/merged/eval.md" "$W/merged/eval.json" "$W/merged/eval.png" "$OUT/" 2>/dev/null
echo "$(date +%T) done in ${SECONDS}s"

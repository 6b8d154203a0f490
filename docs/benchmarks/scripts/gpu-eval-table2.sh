#!/usr/bin/env bash
# Issue 20's accuracy table on ONE H200 in about 4 minutes (docs/evaluation.md): the demo model at 8K and 16K,
# H = 2, 4, 8 virtual hosts, all four tasks, SAMPLES (25) samples per task, i.e. 100 a (length, H, mode) cell, with the
# paired differences to dense and to star (95 % intervals) that `apb eval merge` writes into eval.md.
# Two groups of `apb eval --shard I/N` processes share the GPU, one after the other, so the modes the goals are read
# from come first and the ablations get the time that is left:
#   MODES_FIRST (dense,star,apb-retaining,apb-query,dense-criti,apb-criti): until FIRST_S (150) at most;
#   MODES_THEN (apb-random,apb-no-anchor,apb-no-passing,apb-plain-anchor): until BUDGET (240) less merging.
# Add the ShadowKV modes when they exist, e.g. MODES_FIRST=dense,star,apb-retaining,apb-query,dense-criti,apb-criti,dense-shadowkv,apb-shadowkv.
# Every shard has `--time-limit` (a cut shard keeps the same samples in every cell of its own and says so; eval.md gives
# the samples per cell) and a `timeout` backstop; the two groups' reports are merged into one table (the groups' modes
# must not overlap: dense runs in the first only, and the second group's modes are paired with it sample by sample).
# Writes under $OUT: eval.md, eval.json, eval.png (merged), eval.log (this script's output and each shard's last line).
# Usage (repository root, bundle built): BUNDLE=.device/apb-cli.tar.xz bash docs/benchmarks/scripts/gpu-eval-table2.sh [MODEL_DIR]
#   MODEL_DIR defaults to src/ApbCluster.Cli/demo-model (it must hold retaining_heads.safetensors for apb-retaining and apb-criti).
# Settings: SAMPLES, LENGTHS (8k,16k), HOSTS (2,4,8), SHARDS (13: 25 samples = 2 rounds of 13), BUDGET, FIRST_S, SEED (2027),
#   OMP_NUM_THREADS (1), DEVICE (cuda).
# Estimate (docs/evaluation.md, "The table's cost"): ~1,800 single-process run-seconds at the critiprefill-h200 pace
# (0.105 s a dense run, 0.08 s per virtual host of an APB run), i.e. ~140-180 s on 13 shards if they overlap 10-13x.
# CPU dry run: APB_BIN=src/ApbCluster.Cli/bin/Release/net10.0 DEVICE=cpu SAMPLES=1 LENGTHS=512 HOSTS=2 SHARDS=1 \
#   BUDGET=200 FIRST_S=120 OUT=/tmp/t2 bash docs/benchmarks/scripts/gpu-eval-table2.sh MODEL_DIR
set -uo pipefail
DEVICE=${DEVICE:-cuda}; SAMPLES=${SAMPLES:-25}; LENGTHS=${LENGTHS:-8k,16k}; HOSTS=${HOSTS:-2,4,8}; SEED=${SEED:-2027}
SHARDS=${SHARDS:-13}; BUDGET=${BUDGET:-240}; FIRST_S=${FIRST_S:-150}
MODES_FIRST=${MODES_FIRST:-dense,star,apb-retaining,apb-query,dense-criti,apb-criti}
MODES_THEN=${MODES_THEN:-apb-random,apb-no-anchor,apb-no-passing,apb-plain-anchor}
# One CPU thread per shard for libtorch's host-side work: the shards themselves fill the cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [[ $DEVICE == cuda ]]; then source scripts/gpu-env.sh "${BUNDLE:-.device/apb-gpu.tar.xz}"; fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/eval.log") 2>&1
MODEL=${1:-src/ApbCluster.Cli/demo-model}
[[ -f $MODEL/config.json ]] || { echo "no model at $MODEL"; exit 2; }
W=/tmp/apb-eval-table2; rm -rf $W; mkdir -p $W
echo "$(date +%T) model $MODEL, $SAMPLES samples a task, lengths $LENGTHS, hosts $HOSTS, seed $SEED, $SHARDS shards a group on $DEVICE, budget ${BUDGET}s"
[[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "cpus $(nproc --all)"

# run_group NAME MODES SECONDS: SHARDS processes over the samples; each stops starting samples it cannot finish in time.
run_group() {
  local name=$1 modes=$2 limit=$3 pids=() i
  echo "$(date +%T) [${SECONDS}s] group $name: $modes, time limit ${limit}s"
  for ((i = 0; i < SHARDS; i++)); do
    timeout $((limit + 20)) "$APB_BIN/apb" eval --model "$MODEL" --lengths "$LENGTHS" --hosts "$HOSTS" --modes "$modes" \
      --samples "$SAMPLES" --seed "$SEED" --device "$DEVICE" --shard "$i/$SHARDS" --time-limit "$limit" \
      --out "$W/$name-$i" > "$W/$name-$i.out" 2> "$W/$name-$i.err" &
    pids+=($!)
  done
  wait "${pids[@]}" # not a bare wait: that would also wait for the tee behind exec, forever
  for ((i = 0; i < SHARDS; i++)); do
    if [[ -f $W/$name-$i/eval.json ]]; then echo "$name $i: $(grep -h "samples a cell were run" "$W/$name-$i/eval.md" | head -1 || true)"
    else echo "$name $i FAILED:"; grep -v "^frame #" "$W/$name-$i.err" | tail -5; fi
  done
  echo "$(date +%T) [${SECONDS}s] group $name done"
}

# The first group's limit leaves the second at least a third of the budget; the second gets what is left but merging.
run_group first "$MODES_FIRST" $(( FIRST_S < BUDGET * 2 / 3 ? FIRST_S : BUDGET * 2 / 3 ))
then_s=$(( BUDGET - SECONDS - 15 ))
if [[ -n $MODES_THEN ]] && (( then_s >= 20 )); then run_group then "$MODES_THEN" $then_s
else echo "no time left for $MODES_THEN (${then_s}s)"; fi
"$APB_BIN/apb" eval merge "$W"/first-*/ $(ls -d "$W"/then-*/ 2>/dev/null) --out "$W/merged" > /dev/null
cp "$W/merged/eval.md" "$W/merged/eval.json" "$W/merged/eval.png" "$OUT/" 2>/dev/null
grep -v "^|" "$W/merged/eval.md" | grep -E "^- " # the notes: samples per cell, cut shards, dropped samples
echo "$(date +%T) done in ${SECONDS}s"

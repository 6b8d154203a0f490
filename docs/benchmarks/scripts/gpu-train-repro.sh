#!/usr/bin/env bash
# Issue 5, reproducibility: the demo-model recipe trained twice from scratch with one seed, by steps (not by the
# clock, so both runs follow the same schedule and see the same batches), then the loss curves compared window by
# window (compare-loss-curves.py: "within noise" when 95 % of the windows' mean losses agree within 3 standard errors).
# Writes under $OUT: train-a.csv, train-b.csv (every step), train-a.log, train-b.log (gzip), compare.txt, run.txt.
# Usage (repository root, after a bundle was built): bash docs/benchmarks/scripts/gpu-train-repro.sh
# Settings: BUNDLE (.device/apb-gpu.tar.xz), STEPS (2000), MAX_LENGTH (4k), SEED (0), WINDOW (100), DEVICE (cuda), SIZE (demo).
# CPU dry run: APB_BIN=src/ApbCluster.Cli/bin/Release/net10.0 DEVICE=cpu SIZE=tiny MAX_LENGTH=256 STEPS=40 WINDOW=10 \
#   OUT=/tmp/repro bash docs/benchmarks/scripts/gpu-train-repro.sh
set -uo pipefail
DEVICE=${DEVICE:-cuda}; SIZE=${SIZE:-demo}; STEPS=${STEPS:-2000}; MAX_LENGTH=${MAX_LENGTH:-4k}; SEED=${SEED:-0}; WINDOW=${WINDOW:-100}
if [[ $DEVICE == cuda ]]; then source scripts/gpu-env.sh "${BUNDLE:-.device/apb-gpu.tar.xz}"; fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=/tmp/apb-repro; rm -rf $W; mkdir -p $W
export DOTNET_gcServer=1
: > "$OUT/run.txt"
[[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/run.txt"
for run in a b; do
  t0=$SECONDS
  "$APB_BIN/apb" train demo-model --out $W/$run --device $DEVICE --size $SIZE --max-length $MAX_LENGTH --steps $STEPS \
    --seed $SEED --log "$OUT/train-$run.csv" > $W/train-$run.log 2>&1
  rc=$?
  echo "$(date +%T) run $run: rc=$rc in $((SECONDS - t0)) s: $(tail -2 $W/train-$run.log | head -1)" | tee -a "$OUT/run.txt"
  gzip -c $W/train-$run.log > "$OUT/train-$run.log.gz"
  [[ $rc == 0 ]] || { tail -20 $W/train-$run.log; exit 1; }
done
python3 "$(dirname "$0")/compare-loss-curves.py" "$OUT/train-a.csv" "$OUT/train-b.csv" --window $WINDOW | tee "$OUT/compare.txt"

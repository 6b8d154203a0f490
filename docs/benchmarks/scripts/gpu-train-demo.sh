#!/usr/bin/env bash
# Issue 5, the demo model, on one GPU of the device machine (docs/training.md). Writes under $OUT:
#   demo-model.tar.xz   the model folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
#                       generation_config.json, training.json, retaining_heads.safetensors)
#   train.csv           every training step (loss, answer accuracy, lr, tokens/s)
#   train.log           the training's stdout + stderr (plan, phases, per-step lines)
#   heads.log           retaining-head training (stderr) and its loss CSV
#   eval.md, eval.json  dense accuracy at the longest trained length (four tasks)
#   run.txt             GPU, versions and the wall time of each stage
# Budget: about 6.5 minutes in all (training loop 290 s, retaining heads ~30 s, eval ~20 s).
# Usage (repository root, after scripts/gpu-bundle.sh built .device/apb-gpu.tar.xz from this branch):
#   bash docs/benchmarks/scripts/gpu-train-demo.sh [TRAIN_SECONDS]
#   BUNDLE (.device/apb-gpu.tar.xz) names the bundle, e.g. the CLI-only one (BUNDLE_APPS=src/ApbCluster.Cli scripts/gpu-bundle.sh);
#   SEED (0) seeds weights and data; TRAIN_ARGS="--untied-embeddings --curriculum 512:0.3,2k:0.2,4k:0.1,8k:0.2,16k:0.2" adds/overrides training options.
# A CPU dry run of the same flow (tiny model, short lengths; APB_BIN = a local build of src/ApbCluster.Cli):
#   APB_BIN=src/ApbCluster.Cli/bin/Release/net10.0 DEVICE=cpu SIZE=tiny MAX_LENGTH=512 HEAD_STEPS=3 HEAD_LEN=512 \
#     EVAL_SAMPLES=2 OUT=/tmp/out bash docs/benchmarks/scripts/gpu-train-demo.sh 20
set -uo pipefail
train_s=${1:-290}
DEVICE=${DEVICE:-cuda}; SIZE=${SIZE:-demo}; MAX_LENGTH=${MAX_LENGTH:-16k}
HEAD_STEPS=${HEAD_STEPS:-600}; HEAD_LEN=${HEAD_LEN:-4k}; EVAL_SAMPLES=${EVAL_SAMPLES:-25}
if [[ $DEVICE == cuda ]]; then source scripts/gpu-env.sh "${BUNDLE:-.device/apb-gpu.tar.xz}"; fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=/tmp/apb-demo; rm -rf $W; mkdir -p $W
M=$W/apb-demo-model
APB="$APB_BIN/apb"
# Many data workers allocate at once: server GC keeps them from queueing behind one heap.
export DOTNET_gcServer=1
stamp() { echo "$(date +%T) $*" | tee -a "$OUT/run.txt"; }

: > "$OUT/run.txt"
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/run.txt"
  python3 -c 'import torch;print("torch",torch.__version__,"cuda",torch.version.cuda)' | tee -a "$OUT/run.txt"
fi
echo "cpus $(nproc --all)" | tee -a "$OUT/run.txt"
if ! "$APB" train demo-model --help > /dev/null 2>&1; then
  stamp "error: this bundle's apb has no 'train demo-model' verb: rebuild it with scripts/gpu-bundle.sh from the train branch"
  exit 2
fi

stamp "train demo-model: ${train_s} s, $SIZE, up to $MAX_LENGTH tokens, $DEVICE"
t0=$SECONDS
"$APB" train demo-model --out $M --device $DEVICE --size $SIZE --max-length $MAX_LENGTH --steps 1000000 --time-limit "$train_s" \
  --seed "${SEED:-0}" ${TRAIN_ARGS:-} --log "$OUT/train.csv" > "$OUT/train.log" 2>&1
rc=$?
stamp "train rc=$rc in $((SECONDS - t0)) s: $(tail -2 "$OUT/train.log" | head -1)"
grep -E '^(demo model|budget|phase)' "$OUT/train.log" | tee -a "$OUT/run.txt"
if [[ ! -f $M/model.safetensors ]]; then tail -30 "$OUT/train.log"; exit 1; fi
# A failure in a later phase leaves the checkpoint of the last completed phase: carry on with it, and say so.
[[ $rc == 0 ]] || { stamp "training failed; continuing with the last phase checkpoint"; tail -5 "$OUT/train.log" | tee -a "$OUT/run.txt"; }

stamp "train retaining-heads"
t0=$SECONDS
"$APB" train retaining-heads --model $M --out $M/retaining_heads.safetensors --loss-csv $W/heads.loss.csv \
  --steps $HEAD_STEPS --seq-len $HEAD_LEN --device $DEVICE > $W/heads.out 2> "$OUT/heads.log"
rc=$?
cat $W/heads.loss.csv >> "$OUT/heads.log" 2>/dev/null
stamp "heads rc=$rc in $((SECONDS - t0)) s: $(grep -E '^wrote' "$OUT/heads.log")"

stamp "eval dense at $MAX_LENGTH"
t0=$SECONDS
"$APB" eval --model $M --tasks single-needle,multi-key,multi-value,variable-tracking --lengths $MAX_LENGTH --hosts 1 \
  --modes dense --samples $EVAL_SAMPLES --device $DEVICE --out $W/eval > $W/eval.out 2> $W/eval.err
rc=$?
cp $W/eval/eval.md $W/eval/eval.json "$OUT/" 2>/dev/null
cat $W/eval.out | tee -a "$OUT/run.txt"
[[ $rc == 0 ]] || grep -v "^frame #" $W/eval.err | head -25 | tee -a "$OUT/run.txt" # the message, not the C++ stack
stamp "eval rc=$rc in $((SECONDS - t0)) s"

XZ_OPT=-T0 tar -C $W -cJf "$OUT/demo-model.tar.xz" apb-demo-model
ls -la "$OUT" | tee -a "$OUT/run.txt"

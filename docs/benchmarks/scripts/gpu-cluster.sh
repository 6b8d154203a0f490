#!/usr/bin/env bash
# Issue "actor runtime", the 2-GPU device acceptance (2 x H200): writes under $OUT (at most 8 files):
#   cluster.log        everything this script prints: commands, tables, verdicts
#   bench.json, .md    the in-process NCCL baseline (apb bench --ttft, two GPUs in one process)
#   queries.jsonl      every `apb ask --cluster --json` result, one per line (client times, router phases, plan)
#   node-router.log, node-host0.log, node-host1.log   the apb-node outputs
# 1. baseline: `apb bench --modes apb --gpus 2 --hosts 2 --ttft` at the lengths below;
# 2. a router and two gpu-host apb-node processes (one GPU each, NCCL bootstrapped through the actors) on
#    loopback; a warm-up query (it forms the NCCL ring), then APB at each length, twice, through
#    `apb ask --cluster --json --context-tokens N` with the bench's plan (anchor, passing, retaining heads):
#    client-side time to first token vs the in-process one;
# 3. SIGKILL host1 during the prefill of a long query: time until the client hears of it (bound 10 s) and
#    whom it blames, nvidia-smi a few seconds later, host0 back to Ready (not hung on its dead NCCL peer),
#    and a query that succeeds on host0 alone;
# 4. every node is stopped (SIGTERM, then SIGKILL), nvidia-smi again.
# The 128K point is 130992 context tokens: with the 64-token question and 16 new tokens that is 131072
# positions, Llama 3.1's limit (the router refuses more); the baseline runs the same lengths.
# CPU dry run of everything but the GPU parts (framework-dependent Release build, random:tiny:7 on cpu):
#   dotnet build -c Release && DRY_RUN=1 OUT=/tmp/dry docs/benchmarks/scripts/gpu-cluster.sh
# or with the bundle's own executables: DRY_RUN=1 DRY_BIN=/unpacked/bundle APB_TORCH_LIB=<libtorch-cpu lib folder> ...
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/cluster.log") 2>&1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
SECONDS=0
BUDGET=${BUDGET:-460} # seconds for the whole script (device calls are cut at 600)

if [ "${DRY_RUN:-0}" = 1 ]; then
  if [ -n "${DRY_BIN:-}" ]; then # an unpacked GPU bundle, run on CPU (APB_TORCH_LIB = a CPU libtorch's lib folder)
    APB=("$DRY_BIN/apb"); NODE=("$DRY_BIN/apb-node")
  else
    APB=(dotnet "$PWD/src/ApbCluster.Cli/bin/Release/net10.0/apb.dll")
    NODE=(dotnet "$PWD/src/ApbCluster.Node/bin/Release/net10.0/apb-node.dll")
  fi
  MODEL=${MODEL:-random:tiny:7}; SHAPE=${SHAPE:-tiny}; DEVICES=(cpu cpu); BENCH_ARGS=(--device cpu --gpus 1)
  LENGTHS=${LENGTHS:-"2048 4096"}; KILL_LENGTH=${KILL_LENGTH:-4096}; SURVIVOR_LENGTH=${SURVIVOR_LENGTH:-1024}
  LAYER_DELAY_MS=${LAYER_DELAY_MS:-500}; KILL_DELAY=${KILL_DELAY:-0.3}; NODE_ENV=()
else
  source scripts/gpu-env.sh .device/apb-gpu.tar.xz
  APB=("$APB_BIN/apb"); NODE=("$APB_BIN/apb-node")
  MODEL=${MODEL:-random:llama-3.1-8b:1}; SHAPE=${SHAPE:-llama-3.1-8b}; DEVICES=(cuda:0 cuda:1); BENCH_ARGS=(--device cuda --gpus 2)
  LENGTHS=${LENGTHS:-"32768 130992"}; KILL_LENGTH=${KILL_LENGTH:-130992}; SURVIVOR_LENGTH=${SURVIVOR_LENGTH:-8192}
  LAYER_DELAY_MS=0; KILL_DELAY=${KILL_DELAY:-1.5}
  NODE_ENV=(NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,P2P) # one-time lines when a ring forms: the transport NCCL chose
fi
NEW=16
QUESTION='Where in the numbered notes above is the blue key hidden? Answer' # 64 ASCII characters = 64 tokens
WARMUP_RUNS=1; TIMED_RUNS=${TIMED_RUNS:-3}

VERDICTS=/tmp/apb-cluster-verdicts; : > "$VERDICTS"
section() { printf '\n===== [%3ds] %s =====\n' "$SECONDS" "$*"; }
verdict() { echo "VERDICT $*" | tee -a "$VERDICTS"; }
keep_verdicts() { tee /tmp/apb-cluster-py.out; grep '^VERDICT' /tmp/apb-cluster-py.out >> "$VERDICTS"; }
left() { echo $((BUDGET - SECONDS)); }
# bound N: N seconds, or what is left of the budget (minus a reserve for the shutdown)
bound() { local l=$(( $(left) - 25 )); [ "$l" -lt "$1" ] && echo $((l > 5 ? l : 5)) || echo "$1"; }
now_ms() { date +%s%3N; }
py() { python3 -c "$@"; }

declare -A PID
cleanup() {
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
  for _ in $(seq 1 40); do
    alive=0; for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.25
  done
  for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && { echo "  $name (pid ${PID[$name]}) did not stop: SIGKILL"; kill -KILL "${PID[$name]}" 2>/dev/null; }; done
  PID=()
}
trap cleanup EXIT

[ ${#QUESTION} -eq 64 ] || { echo "the question must be 64 characters (it is ${#QUESTION})"; exit 2; }
[ "${NODE[0]}" = dotnet ] || [ -x "${NODE[0]}" ] || { echo "${NODE[0]} is missing: rebuild the bundle with scripts/gpu-bundle.sh"; exit 2; }
echo "gpu-cluster.sh: model $MODEL, lengths $LENGTHS, kill at $KILL_LENGTH, devices ${DEVICES[*]}, dry run ${DRY_RUN:-0}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv
  nvidia-smi topo -m 2>/dev/null | head -5
  df -h /dev/shm | tail -1 # NCCL between processes needs some shared memory
fi

# ---------------------------------------------------------------------------------------------------------
section "1. in-process NCCL baseline: apb bench (two GPUs in one process), prefill and time to first token"
lens_csv=$(echo $LENGTHS | tr ' ' ',')
rm -rf /tmp/apb-cluster-bench
limit=$(bound 240)
set -x
timeout "$limit" "${APB[@]}" bench --shape "$SHAPE" --lengths "$lens_csv" --modes apb "${BENCH_ARGS[@]}" --hosts 2 \
  --warmup $WARMUP_RUNS --repeats $TIMED_RUNS --ttft --out /tmp/apb-cluster-bench
{ rc=$?; set +x; } 2>/dev/null
echo "bench exit code $rc"
cp /tmp/apb-cluster-bench/bench.json /tmp/apb-cluster-bench/bench.md "$OUT/" 2>/dev/null
# The cluster runs the bench's own plan: its anchor and passing lengths and its compressor (retaining heads).
plan_for() {
  py "import json,sys
try: r=json.load(open('/tmp/apb-cluster-bench/bench.json'))
except Exception: sys.exit(0)
for p in r['Prefill']:
    if p['Mode']=='apb' and p['Tokens']==$1: print('--anchor %d --passing %d --compressor retaining' % (p['Plan']['anchor'], p['Plan']['passing']))" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------------------
section "2. cluster: a router and two gpu-host nodes on loopback, one GPU each"
read -r P_ROUTER A_ROUTER P_HOST0 A_HOST0 P_HOST1 A_HOST1 < <(py "import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(('127.0.0.1',0)) for s in ss]
print(*[s.getsockname()[1] for s in ss]); [s.close() for s in ss]")
HOST0="127.0.0.1:$P_HOST0/gpu0"; HOST1="127.0.0.1:$P_HOST1/gpu0"
JOIN_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n') # this run's cluster only (docs/security.md)
start_node() { # NAME PORT ADMIN_PORT ROLE [VAR=VALUE ...]
  local name=$1 port=$2 admin=$3 role=$4; shift 4
  env CLUSTER_IP=127.0.0.1 CLUSTER_PORT="$port" CLUSTER_SEEDS="127.0.0.1:$P_ROUTER" CLUSTER_ROLES="$role" \
    APB_ADMIN_PORT="$admin" APB_MODEL="$MODEL" APB_JOIN_SECRET="$JOIN_SECRET" "$@" "${NODE[@]}" > "$OUT/node-$name.log" 2>&1 &
  PID[$name]=$!
  disown "${PID[$name]}" # no job-control noise when one is killed; cleanup still stops it by pid
  echo "started $name: pid ${PID[$name]}, cluster port $port, admin $admin, role $role $*"
}
start_node router "$P_ROUTER" "$A_ROUTER" router
# (the test-only layer delay slows the CPU dry run's prefill enough to kill mid-way; 0 is not a valid value: unset)
[ "$LAYER_DELAY_MS" -gt 0 ] && NODE_ENV+=(APB_TEST_LAYER_DELAY_MS="$LAYER_DELAY_MS")
start_node host0 "$P_HOST0" "$A_HOST0" gpu-host APB_DEVICE="${DEVICES[0]}" "${NODE_ENV[@]}"
start_node host1 "$P_HOST1" "$A_HOST1" gpu-host APB_DEVICE="${DEVICES[1]}" "${NODE_ENV[@]}"

# gpu_hosts: the router's `gpu list` as "HOST STATE" lines (state names; empty when the router cannot answer yet)
gpu_hosts() {
  timeout 15 "${APB[@]}" admin --endpoint "127.0.0.1:$A_ROUTER" --json gpu list 2>/dev/null | py "import json,sys
names=['Starting','Ready','Busy','Draining','Unreachable','Failed']
try: hosts=json.load(sys.stdin)
except Exception: sys.exit(0)
for h in hosts:
    s=h.get('state'); print(h.get('hostId'), names[s] if isinstance(s,int) and s<len(names) else s)"
}
# wait_for WHAT SECONDS COMMAND...: polls until the command succeeds
wait_for() {
  local what=$1 limit=$2 t0=$SECONDS; shift 2
  while ! "$@"; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then echo "NOT within ${limit}s: $what"; return 1; fi
    sleep 1
  done
  echo "ok after $((SECONDS - t0))s: $what"
}
ready_count() {
  for n in router host0 host1; do
    kill -0 "${PID[$n]}" 2>/dev/null || { echo "node $n (pid ${PID[$n]}) exited during start-up:"; tail -15 "$OUT/node-$n.log"; exit 1; }
  done
  [ "$(gpu_hosts | grep -c ' Ready$')" -ge "$1" ]
}
if ! wait_for "both hosts registered and Ready" "$(bound 120)" ready_count 2; then
  for n in router host0 host1; do echo "--- $n (tail)"; tail -20 "$OUT/node-$n.log"; done
  exit 1
fi
gpu_hosts

# ask NAME TOKENS [extra args...]: one query through `apb ask --cluster`; its JSON goes to queries.jsonl
ask() {
  local name=$1 tokens=$2; shift 2
  local t0=$SECONDS out rc
  timeout "$(bound 150)" "${APB[@]}" ask --cluster "127.0.0.1:$P_ROUTER" --mode apb --json --context-tokens "$tokens" \
    --question "$QUESTION" -n $NEW "$@" > "/tmp/apb-ask-$name.out" 2> "/tmp/apb-ask-$name.err"
  rc=$?
  out=$(grep '^{' "/tmp/apb-ask-$name.out" | tail -1) # the answer is the last JSON line of stdout
  grep -v '^{' "/tmp/apb-ask-$name.out" | head -5
  py "import json,sys
try: r=json.loads(sys.argv[4])
except Exception: r=None
print(json.dumps({'name':sys.argv[1],'tokens':int(sys.argv[2]),'rc':int(sys.argv[3]),'result':r}))" "$name" "$tokens" "$rc" "${out:-null}" >> "$OUT/queries.jsonl"
  py "import json,sys
r=json.loads(sys.argv[1]) if sys.argv[1] not in ('','null') else None
if r is None: print('  no result')
elif 'error' in r: print('  FAILED:', r['error'])
else:
    c=r['client']; t=r['timings']
    print('  %d prompt + %d new tokens; client: accepted %.0f ms, ttft %.1f ms, total %.0f ms; router: plan %.1f ms, prefill %.1f ms, ttft %.1f ms; plan %s' % (
        r['prompt_tokens'], r['generated_tokens'], c['accepted_ms'] or -1, c['ttft_ms'] or -1, c['total_ms'], t['PlanMs'], t['PrefillMs'], t['TimeToFirstTokenMs'], r['plan']))" "${out:-null}"
  echo "  $name: $tokens tokens, exit code $rc, $((SECONDS - t0)) s wall (process start and connect included)"
  [ $rc = 0 ] || tr '\r' '\n' < "/tmp/apb-ask-$name.err" | tail -3
  return $rc
}

first_len=${LENGTHS%% *}
section "2a. warm-up query ($first_len tokens): forms the NCCL ring (both hosts join through the actors)"
ask warmup "$first_len" $(plan_for "$first_len") || ask warmup-retry "$first_len" $(plan_for "$first_len")
grep -h "NCCL ring\|ring .* formed\|joined\|via P2P\|via SHM\|NET/" "$OUT"/node-*.log 2>/dev/null | grep -v "^\s*$" | head -12

for n in $LENGTHS; do
  section "2b. APB at $n context tokens: $WARMUP_RUNS warm-up + $TIMED_RUNS timed queries ($(plan_for "$n"))"
  for i in $(seq 1 $WARMUP_RUNS); do ask "warm-$n-$i" "$n" $(plan_for "$n"); done
  for i in $(seq 1 $TIMED_RUNS); do ask "apb-$n-$i" "$n" $(plan_for "$n"); done
done
echo; grep -h "NCCL ring\|warm)" "$OUT/node-router.log" | tail -4

section "2c. time to first token: cluster (client side, best of $TIMED_RUNS) vs in-process NCCL (best of $TIMED_RUNS)"
[ "$LAYER_DELAY_MS" -gt 0 ] && echo "(the hosts sleep ${LAYER_DELAY_MS} ms per layer in this run, the bench does not: this comparison means nothing here)"
py "import json
try: bench={p['Tokens']:p for p in json.load(open('/tmp/apb-cluster-bench/bench.json'))['Prefill'] if p['Mode']=='apb'}
except Exception: bench={}
runs=[json.loads(l) for l in open('$OUT/queries.jsonl')]
print('| context tokens | in-process prefill s | in-process TTFT s | cluster TTFT s (client) | cluster router prefill s | ratio cluster/in-process | within 5% |')
print('|---:|---:|---:|---:|---:|---:|---|')
for n in [int(x) for x in '$LENGTHS'.split()]:
    ok=[r['result'] for r in runs if r['name'].startswith('apb-%d-' % n) and r['rc']==0 and r['result'] and r['result'].get('client')]
    b=bench.get(n, {})
    ttft_in=b.get('TtftSeconds'); pre_in=b.get('Seconds')
    ttft_cl=min((r['client']['ttft_ms'] for r in ok if r['client']['ttft_ms']), default=None)
    pre_cl=min((r['timings']['PrefillMs'] for r in ok), default=None)
    f=lambda v, s=1: '-' if v is None else '%.3f' % (v/s)
    ratio=ttft_cl/1000/ttft_in if ttft_cl and ttft_in else None
    print('| %d | %s | %s | %s | %s | %s | %s |' % (n, f(pre_in), f(ttft_in), f(ttft_cl,1000), f(pre_cl,1000), '-' if ratio is None else '%.3f' % ratio,
          '-' if ratio is None else ('yes' if ratio <= 1.05 else 'NO')))
    print('VERDICT ttft %d: %s' % (n, 'NO DATA' if ratio is None else ('PASS' if ratio <= 1.05 else 'FAIL') + ' (cluster/in-process %.3f)' % ratio))
print('in-process all TTFT runs:', {n: b.get('AllTtftSeconds') for n,b in bench.items()})
print('cluster all TTFT runs (ms):', {r['name']: r['result']['client']['ttft_ms'] for r in runs if r['result'] and r['result'].get('client')})" | keep_verdicts

# ---------------------------------------------------------------------------------------------------------
section "3. failure: SIGKILL host1 ($HOST1, pid ${PID[host1]}) during the prefill of a $KILL_LENGTH-token query"
rm -f /tmp/apb-kill.out /tmp/apb-kill.err; : > /tmp/apb-kill.err # (a stale file would look like progress)
timeout "$(bound 90)" "${APB[@]}" ask --cluster "127.0.0.1:$P_ROUTER" --mode apb --json --context-tokens "$KILL_LENGTH" \
  --question "$QUESTION" -n $NEW $(plan_for "$KILL_LENGTH") > /tmp/apb-kill.out 2>> /tmp/apb-kill.err &
ask_pid=$!
for _ in $(seq 1 600); do grep -q 'prefill \[' /tmp/apb-kill.err 2>/dev/null && break; sleep 0.05; done
echo "first prefill progress seen after $SECONDS s of script time; killing host1 in ${KILL_DELAY} s"
sleep "$KILL_DELAY"
kill_ms=$(now_ms)
kill -KILL "${PID[host1]}"
killed_pid=${PID[host1]}; unset 'PID[host1]'
echo "SIGKILL host1 (pid $killed_pid) at unix ms $kill_ms; progress so far: $(tr '\r' '\n' < /tmp/apb-kill.err | grep 'prefill \[' | tail -1)"
for _ in $(seq 1 300); do kill -0 $ask_pid 2>/dev/null || break; sleep 0.1; done
kill -0 $ask_pid 2>/dev/null && { echo "the client has not returned 30 s after the kill: HANG"; kill $ask_pid; }
wait $ask_pid; echo "client exit code $? (1 = the query failed, as it must)"
tr '\r' '\n' < /tmp/apb-kill.err | grep -v '^prefill \[' | tail -3
py "import json,sys
try: r=json.loads([l for l in open('/tmp/apb-kill.out').read().splitlines() if l.startswith('{')][-1])
except Exception: r=None
print(json.dumps({'name':'kill-host1','tokens':$KILL_LENGTH,'kill_unix_ms':$kill_ms,'result':r}))" >> "$OUT/queries.jsonl"
py "import json
r=json.loads(open('$OUT/queries.jsonl').read().splitlines()[-1])['result']
if not r or 'error' not in r: print('VERDICT failure: NO failure reported (result: %s)' % r)
else:
    after=r['unix_ms']-$kill_ms
    print('failure reported %.2f s after the kill, blaming %s: %s' % (after/1000, r['failing_host'], r['error']))
    print('VERDICT failure: %s (within 10 s: %s; names the killed host %s: %s)' % ('PASS' if after < 10000 and r['failing_host']=='$HOST1' else 'FAIL',
          after < 10000, '$HOST1', r['failing_host']=='$HOST1'))" | keep_verdicts
sleep 3
if command -v nvidia-smi >/dev/null; then
  echo "nvidia-smi 3 s later (router pid ${PID[router]}, host0 pid ${PID[host0]}, killed host1 pid $killed_pid):"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv
  nvidia-smi --query-compute-apps=pid --format=csv,noheader | grep -qw "$killed_pid" \
    && verdict "gpu: FAIL (killed pid $killed_pid still holds GPU memory)" || verdict "gpu: PASS (killed pid $killed_pid holds no GPU)"
fi
kill -0 "${PID[host0]}" 2>/dev/null && echo "host0 (pid ${PID[host0]}) is alive" || echo "host0 EXITED: $(tail -3 "$OUT/node-host0.log")"
host0_ready() { gpu_hosts | grep -q "^$HOST0 Ready$"; }
host1_gone() { local s; s=$(gpu_hosts); [ -n "$s" ] && ! grep -q "^$HOST1 \(Ready\|Busy\|Starting\)$" <<< "$s"; }
wait_for "host0 Ready again (its NCCL rank aborted, not hung on the dead peer)" "$(bound 30)" host0_ready \
  && verdict "survivor not hung: PASS" || verdict "survivor not hung: FAIL"
wait_for "host1 unreachable or removed in the router's view" "$(bound 40)" host1_gone
gpu_hosts
grep -h "aborting query\|aborted\|dropping NCCL ring\|NCCL ring .* given up" "$OUT/node-host0.log" "$OUT/node-router.log" | tail -6

section "3b. a query on the surviving host ($SURVIVOR_LENGTH tokens, one host: dense, no NCCL)"
ask survivor "$SURVIVOR_LENGTH" && verdict "survivor query: PASS" || verdict "survivor query: FAIL"

# ---------------------------------------------------------------------------------------------------------
section "4. stop every node"
cleanup
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-compute-apps=pid,used_memory --format=csv; fi
for n in router host0 host1; do
  f="$OUT/node-$n.log"
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 8000000 ] && { tail -c 8000000 "$f" > "$f.tmp"; mv "$f.tmp" "$f"; }
done
section "summary"
cat "$VERDICTS"
echo "done in $SECONDS s"

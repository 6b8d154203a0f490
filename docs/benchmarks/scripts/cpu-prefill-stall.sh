#!/usr/bin/env bash
# Issue 14 point 2: how long a new query's prefill stalls a running decode, per apb.gpu-host.prefill-policy, on CPU.
# ROUNDS times, for each policy in turn (alternating, so a shared machine's changing load falls on both alike): a router and two gpu-host apb-node processes on loopback (random model, APB_PREFILL_POLICY set on
# the hosts), then `apb load --stall` (docs/cli.md): one query decodes DECODE tokens; after ARRIVE of them a query with
# a CONTEXT-token document arrives; the running query's gaps between tokens are timed on the client. Writes under $OUT:
#   stall-POLICY-ROUND.txt (the table apb load prints, after the machine's load average),
#   stall-POLICY-ROUND.json (every trial's token times and gaps), node-POLICY-ROUND-{router,host0,host1}.log
# Needs a Release build: dotnet build tests/ApbCluster.Runtime.Tests -c Release (builds apb and apb-node).
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-docs/benchmarks/prefill-stall}
MODEL=${MODEL:-random:tiny:7}
CONTEXT=${CONTEXT:-16384}; DECODE=${DECODE:-400}; ARRIVE=${ARRIVE:-24}; REPEAT=${REPEAT:-3}
POLICIES=${POLICIES:-"concurrent decode-first"}; ROUNDS=${ROUNDS:-2}
APB=(dotnet "$PWD/src/ApbCluster.Cli/bin/Release/net10.0/apb.dll")
NODE=(dotnet "$PWD/src/ApbCluster.Node/bin/Release/net10.0/apb-node.dll")
mkdir -p "$OUT"

declare -A PID
cleanup() {
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
  for name in "${!PID[@]}"; do
    for _ in $(seq 1 40); do kill -0 "${PID[$name]}" 2>/dev/null || break; sleep 0.25; done
    kill -0 "${PID[$name]}" 2>/dev/null && kill -KILL "${PID[$name]}" 2>/dev/null
  done
  PID=()
}
trap cleanup EXIT

free_ports() { python3 -c "import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(('127.0.0.1',0)) for s in ss]
print(*[s.getsockname()[1] for s in ss]); [s.close() for s in ss]"; }

ready_hosts() { # the router's Ready hosts
  timeout 15 "${APB[@]}" admin --endpoint "127.0.0.1:$A_ROUTER" --json gpu list 2>/dev/null |
    python3 -c "import json,sys
try: print(sum(1 for h in json.load(sys.stdin) if h.get('state') in (1,'Ready')))
except Exception: print(0)"
}

echo "cpu-prefill-stall.sh: $(nproc) cores, model $MODEL, arriving document $CONTEXT tokens, running query $DECODE tokens, arrival after $ARRIVE, $REPEAT trials"
for round in $(seq 1 "$ROUNDS"); do for policy in $POLICIES; do
  run="$policy-$round"
  read -r P_ROUTER A_ROUTER P_HOST0 A_HOST0 P_HOST1 A_HOST1 < <(free_ports)
  SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  start_node() { # NAME PORT ADMIN ROLE [VAR=VALUE ...]
    local name=$1 port=$2 admin=$3 role=$4; shift 4
    env CLUSTER_IP=127.0.0.1 CLUSTER_PORT="$port" CLUSTER_SEEDS="127.0.0.1:$P_ROUTER" CLUSTER_ROLES="$role" APB_ADMIN_PORT="$admin" \
      APB_MODEL="$MODEL" APB_JOIN_SECRET="$SECRET" "$@" "${NODE[@]}" > "$OUT/node-$run-$name.log" 2>&1 &
    PID[$name]=$!
  }
  start_node router "$P_ROUTER" "$A_ROUTER" router APB_QUERY_TIMEOUT=600
  start_node host0 "$P_HOST0" "$A_HOST0" gpu-host APB_PREFILL_POLICY="$policy"
  start_node host1 "$P_HOST1" "$A_HOST1" gpu-host APB_PREFILL_POLICY="$policy"
  for _ in $(seq 1 120); do [ "$(ready_hosts)" -ge 2 ] && break; sleep 1; done
  [ "$(ready_hosts)" -ge 2 ] || { echo "the hosts did not get Ready"; tail -20 "$OUT"/node-"$run"-*.log; exit 1; }
  grep -h "prefill policy" "$OUT"/node-"$run"-host*.log
  echo "== policy $policy, round $round"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" | tee "$OUT/stall-$run.txt"
  "${APB[@]}" load --stall --cluster "127.0.0.1:$P_ROUTER" --context-tokens "$CONTEXT" --decode-tokens "$DECODE" \
    --arrive-after "$ARRIVE" --max-new-tokens 4 --repeat "$REPEAT" --query-timeout 600 --out "$OUT/stall-$run.json" \
    2> "$OUT/stall-$run.stderr" | tee -a "$OUT/stall-$run.txt"
  echo "exit ${PIPESTATUS[0]}"
  cleanup
done; done

# summary.md: every round's trials of a policy pooled
python3 docs/benchmarks/scripts/prefill-stall-summary.py "$OUT" $POLICIES > "$OUT/summary.md"
cat "$OUT/summary.md"

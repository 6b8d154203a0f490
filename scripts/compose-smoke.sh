#!/usr/bin/env bash
# Builds the cpu image and runs the cpu compose profile on a real Docker engine, as an operator would:
# healthy containers, one chat completion over HTTP, `apb admin cluster show` through `exec`, a host
# container killed and back, clean exit codes on stop. Then builds the gpu target (its runtime needs
# a GPU container runtime, which this cannot exercise).
#
# Made for a fresh Debian 12 machine that reaches only the package registries (CI): it installs
# Debian's docker.io + docker-compose (v1), runs its own dockerd (own data-root, socket and pidfile
# under $APB_SMOKE_DIR), and where a base image cannot be pulled it makes a local stand-in: Debian
# bookworm by debootstrap, plus this machine's own .NET install (docs/operations.md). Run as root.
# Everything it started is stopped and removed on exit, also on failure; a failure names its step.
#   APB_SMOKE_DIR   work folder (default /var/tmp/apb-compose-smoke)
#   APB_SMOKE_KEEP  1: keep the engine's images and the debootstrap rootfs for the next run (local use)
#   APB_SMOKE_GPU   0: skip the gpu target build
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${APB_SMOKE_DIR:-/var/tmp/apb-compose-smoke}
keep=${APB_SMOKE_KEEP:-0}
project=apbsmoke
compose_file=docker/docker-compose.yml
http_port=${APB_CPU_HTTP_PORT:-18090}
export APB_CPU_HTTP_PORT=$http_port APB_CPU_METRICS_PORT=${APB_CPU_METRICS_PORT:-19474}
# Debian's client (docker.io), whatever else is on PATH; it and docker-compose talk to our own engine.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export DOCKER_HOST=unix://$work/docker.sock
started=$(date +%s)
step=setup

say() { printf '[%4ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }
begin() { step=$1; say "== $step"; }
compose() { docker-compose -p "$project" -f "$compose_file" --profile cpu "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT ERR
    set +e
    if [ "$rc" -ne 0 ]; then
        say "FAILED in step: $step (exit $rc)"
        if [ -S "$work/docker.sock" ]; then
            compose ps 2>/dev/null
            compose logs --no-color --tail 40 2>/dev/null | tail -80
        fi
    fi
    say "== teardown"
    if [ -f "$work/dockerd.pid" ] && kill -0 "$(cat "$work/dockerd.pid")" 2>/dev/null; then
        compose down -v --remove-orphans >/dev/null 2>&1
        docker rm -f apb-smoke-plain apb-smoke-gpu >/dev/null 2>&1
        local pid; pid=$(cat "$work/dockerd.pid")
        kill "$pid"
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && { say "dockerd did not stop in 60 s: killing it"; kill -9 "$pid"; }
    fi
    # Bridges the engine made (docker0 only if this run created it).
    [ "${made_docker0:-0}" = 1 ] && ip link delete docker0 2>/dev/null
    if [ "$keep" = 1 ]; then
        say "kept $work (APB_SMOKE_KEEP=1)"
    else
        # Mounts left behind by a killed engine would make rm fail.
        grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
        rm -rf "$work"
    fi
    if [ "$rc" -eq 0 ]; then say "compose smoke: PASSED in $(( $(date +%s) - started )) s"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit $?' ERR

# Polls "$@" every 2 s until it succeeds or $1 seconds pass.
wait_for() {
    local limit=$1; shift
    local deadline=$(( $(date +%s) + limit ))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "gave up after ${limit} s: $*"; return 1; }
        sleep 2
    done
}

[ "$(id -u)" = 0 ] || { echo "compose-smoke: run as root (it installs packages and runs dockerd)" >&2; exit 2; }
mkdir -p "$work/cache"

begin "install engine"
need=()
for cmd in dockerd:docker.io docker-compose:docker-compose iptables:iptables debootstrap:debootstrap curl:curl; do
    [ -x "/usr/bin/${cmd%%:*}" ] || [ -x "/usr/sbin/${cmd%%:*}" ] || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
docker --version; docker-compose --version

begin "start engine"
ip link show docker0 >/dev/null 2>&1 || made_docker0=1
dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    --host "$DOCKER_HOST" >"$work/dockerd.log" 2>&1 &
wait_for 60 docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; exit 1; }
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}}'

begin "base images"
# shellcheck source=scripts/compose-smoke/base-images.sh
. scripts/compose-smoke/base-images.sh
base_images

begin "build cpu image"
build_image() { # target, extra build args...; the full log stays in $work, its tail shows on failure
    local target=$1; shift
    DOCKER_BUILDKIT=1 docker build --progress=plain -f docker/Dockerfile --target "$target" -t "apb:$target" \
        --build-arg DOTNET_SDK="$sdk_image" --build-arg DOTNET_ASPNET="$aspnet_image" "$@" . >"$work/build-$target.log" 2>&1 \
        || { tail -30 "$work/build-$target.log"; return 1; }
}
build_image cpu
docker image ls apb:cpu --format 'apb:cpu {{.Size}}'

begin "plain docker run advertises its own address"
docker run -d --name apb-smoke-plain -e CLUSTER_ROLES=router -e APB_JOIN_SECRET=smoke-plain-run-secret apb:cpu >/dev/null
ip_addr=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' apb-smoke-plain)
wait_for 60 bash -c "docker logs apb-smoke-plain 2>&1 | grep -q 'apb-node address'"
docker logs apb-smoke-plain 2>&1 | grep 'apb-node address'
docker logs apb-smoke-plain 2>&1 | grep -q "apb-node address : akka.tcp://apb@$ip_addr:4053 (bind 0.0.0.0:4053)"
docker rm -f apb-smoke-plain >/dev/null

begin "compose up (cpu profile)"
compose up -d
healthy() {
    local id; for id in $(compose ps -q); do
        [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")" = healthy ] || return 1
    done
    [ "$(compose ps -q | wc -l)" -eq 2 ]
}
wait_for 240 healthy
compose ps

begin "chat completion over HTTP"
request='{"context":"The harbour master keeps the ledger. The ledger records the code 4812 for the north gate.","messages":[{"role":"user","content":"What is the code for the north gate?"}],"max_tokens":8}'
ask() {
    curl -sS --max-time 120 -o "$work/answer.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$request" "http://127.0.0.1:$http_port/v1/chat/completions" >"$work/status" 2>/dev/null || return 1
    [ "$(cat "$work/status")" = 200 ] && grep -q '"content":' "$work/answer.json"
}
# Healthy members first register their hosts with the router (register-interval): allow for it.
wait_for 120 ask
say "answer: $(cut -c1-300 "$work/answer.json")"

begin "apb admin cluster show through exec"
compose exec -T cpu-router apb admin cluster show | tee "$work/show.txt"
grep -q 'cpu-hosts' "$work/show.txt"
compose exec -T cpu-router apb admin gpu list | tee "$work/gpus.txt"
[ "$(grep -c 'cpu-hosts:4053/gpu' "$work/gpus.txt")" -eq 2 ]

begin "kill a host container and see it rejoin"
hosts_id=$(compose ps -q cpu-hosts)
# SIGKILL from outside the container: a crash, so the restart policy applies (docker kill would not).
kill -9 "$(docker inspect -f '{{.State.Pid}}' "$hosts_id")"
wait_for 60 bash -c "[ \"\$(docker inspect -f '{{.RestartCount}}' $hosts_id)\" -ge 1 ]"
say "restarted (restart count $(docker inspect -f '{{.RestartCount}}' "$hosts_id"))"
wait_for 240 healthy
up_again() {
    compose exec -T cpu-router apb admin gpu list >"$work/gpus.txt" 2>&1 &&
        [ "$(grep 'cpu-hosts:4053/gpu' "$work/gpus.txt" | grep -vc -i 'unreachable')" -eq 2 ]
}
wait_for 120 up_again
cat "$work/gpus.txt"
begin "next query after the rejoin"
wait_for 120 ask
say "answer: $(cut -c1-300 "$work/answer.json")"

begin "stop: containers exit 0"
compose stop
bad=0
for id in $(compose ps -q); do
    code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
    say "$(docker inspect -f '{{.Name}}' "$id") exited $code"
    [ "$code" -eq 0 ] || bad=1
done
[ "$bad" -eq 0 ]
compose down -v --remove-orphans

if [ "${APB_SMOKE_GPU:-1}" != 0 ]; then
    begin "build gpu image"
    gpu_base_image
    build_image gpu --build-arg TORCH_BASE="$torch_image"
    grep -o 'PyTorch .* at .*' "$work/build-gpu.log" | tail -1
    docker image ls apb:gpu --format 'apb:gpu {{.Size}}'
    # No GPU runtime here: check only that the image's apb-node starts and parses its settings.
    docker run --rm apb:gpu --help >"$work/gpu-help.txt"
    head -1 "$work/gpu-help.txt"
fi

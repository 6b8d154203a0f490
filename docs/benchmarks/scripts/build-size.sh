#!/usr/bin/env bash
# Disk taken by a fresh clone after `dotnet build` (Release), with the default build (only this machine's native
# libraries, hard-linked from the NuGet cache where it can) and with every platform's libraries copied
# (-p:ApbAllRuntimes=true -p:CreateHardLinksForCopyLocalIfPossible=false, the build before this was changed).
# Usage (repository root): bash docs/benchmarks/scripts/build-size.sh > docs/benchmarks/build-size/size.txt
set -euo pipefail
repo=$(pwd); w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
measure() {
  local name=$1; shift
  git clone -q "$repo" "$w/$name"
  (cd "$w/$name" && dotnet build ApbCluster.sln -c Release -nologo -v quiet "$@" > /dev/null)
  echo "$name: $(du -sh --exclude=.git "$w/$name" | cut -f1) (du -sh of the clone, .git left out; build options: ${*:-none})"
}
echo "$(date -u +%F) $(nproc) cores, $(dotnet --version), commit $(git rev-parse --short HEAD)"
measure default
measure all-runtimes -p:ApbAllRuntimes=true -p:CreateHardLinksForCopyLocalIfPossible=false

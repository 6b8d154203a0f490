#!/usr/bin/env bash
# Builds one self-contained linux-x64 bundle of the GPU flavour (no libtorch inside: GPU hosts use their
# PyTorch install's) holding the apb CLI and the GPU-capable test executables, for machines without .NET.
#   scripts/gpu-bundle.sh [out.tar.xz]        (default .device/apb-gpu.tar.xz)
# On the GPU machine: scripts/gpu-env.sh sets LD_LIBRARY_PATH/APB_TORCH_LIB; then run /tmp/apb-gpu/apb etc.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device/apb-gpu.tar.xz}
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d)
for p in src/ApbCluster.Cli tests/ApbCluster.Model.Tests tests/ApbCluster.Parallel.Tests; do
  dotnet publish "$p" -c Release -r linux-x64 --self-contained -p:ApbGpu=true -p:InvariantGlobalization=true -o "$stage" -v quiet >&2
done
rm -f "$stage"/libtorch*.so "$stage"/libc10*.so "$stage"/libgomp*.so* "$stage"/*.pdb "$stage"/createdump
tar -cJf "$out" -C "$stage" .
rm -rf "$stage"
ls -la "$out" >&2

#!/usr/bin/env bash
# Source on a GPU machine: unpacks the bundle and points the runtime at the host's PyTorch libraries.
#   source scripts/gpu-env.sh [bundle.tar.xz]   -> $APB_BIN holds apb, apb-node, ApbCluster.Model.Tests, ...
# Unpacks again whenever the bundle differs from the one unpacked before (a warm machine keeps /tmp).
bundle=${1:-.device/apb-gpu.tar.xz}
export APB_BIN=/tmp/apb-gpu
stamp=$(md5sum < "$bundle" | cut -c1-32)
if [ ! -x "$APB_BIN/apb" ] || [ "$(cat "$APB_BIN/.bundle-md5" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$APB_BIN" && mkdir -p "$APB_BIN" && tar -xJf "$bundle" -C "$APB_BIN" && echo "$stamp" > "$APB_BIN/.bundle-md5"
fi
torch=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nv=$(python3 -c 'import nvidia,os;print(nvidia.__path__[0])')
export LD_LIBRARY_PATH="$torch/lib:$nv/nccl/lib:$nv/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export APB_TORCH_LIB="$torch/lib"

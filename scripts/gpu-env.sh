#!/usr/bin/env bash
# Source on a GPU machine: unpacks the bundle (once) and points the runtime at the host's PyTorch libraries.
#   source scripts/gpu-env.sh [bundle.tar.xz]   -> $APB_BIN holds apb, ApbCluster.Model.Tests, ...
bundle=${1:-.device/apb-gpu.tar.xz}
export APB_BIN=/tmp/apb-gpu
if [ ! -x "$APB_BIN/apb" ]; then mkdir -p "$APB_BIN" && tar -xJf "$bundle" -C "$APB_BIN"; fi
torch=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nv=$(python3 -c 'import nvidia,os;print(nvidia.__path__[0])')
export LD_LIBRARY_PATH="$torch/lib:$nv/nccl/lib:$nv/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export APB_TORCH_LIB="$torch/lib"

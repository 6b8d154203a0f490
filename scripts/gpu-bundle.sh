#!/usr/bin/env bash
# Builds one self-contained linux-x64 bundle of the GPU flavour (no libtorch inside: GPU hosts use their
# PyTorch install's) holding the apb CLI, the apb-node cluster node and the GPU-capable test executables, for
# machines without .NET.
#   scripts/gpu-bundle.sh [out.tar.xz]        (default .device/apb-gpu.tar.xz; BUNDLE_DEMO_MODEL=1 adds apb demo's model)
#   BUNDLE_APPS="src/ApbCluster.Cli" builds the apb CLI alone (about half the size): enough to train and evaluate,
#   and it leaves room in the device call's 64 MiB for a model folder carried beside it.
# On the GPU machine: scripts/gpu-env.sh sets LD_LIBRARY_PATH/APB_TORCH_LIB; then run /tmp/apb-gpu/apb etc.
# Each app is published on its own, then merged into one folder: where two apps ship different builds of the
# same file (e.g. apb-node's Akka.Cluster 1.5.74 and ASP.NET's Microsoft.Extensions 10 against the CLI's
# 1.5.73 / 5.0, or the CLI's SkiaSharp 3.119 against TorchSharp's 2.88 in the test apps), the higher assembly
# version (from the apps' deps.json) is kept: every app binds to a version at least as high as it was built for.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device/apb-gpu.tar.xz}
mkdir -p "$(dirname "$out")"
parts=$(mktemp -d)
stage=$(mktemp -d)
apps=${BUNDLE_APPS:-src/ApbCluster.Cli src/ApbCluster.Node tests/ApbCluster.Model.Tests tests/ApbCluster.Parallel.Tests}
for p in $apps; do
  dotnet publish "$p" -c Release -r linux-x64 --self-contained -p:ApbGpu=true -p:InvariantGlobalization=true -o "$parts/$(basename "$p")" -v quiet >&2
done
python3 - "$stage" "$parts"/* <<'EOF' >&2
import filecmp, glob, json, os, shutil, sys
stage, parts = sys.argv[1], sys.argv[2:]

def versions(part):
    """file name -> (assemblyVersion, fileVersion) as tuples, from every deps.json of the app."""
    found = {}
    for deps in glob.glob(os.path.join(part, "*.deps.json")):
        for target in json.load(open(deps))["targets"].values():
            for lib in target.values():
                for kind in ("runtime", "native"):
                    for path, meta in (lib.get(kind) or {}).items():
                        v = tuple(tuple(int(x) for x in (meta.get(k) or "0").split(".")) for k in ("assemblyVersion", "fileVersion"))
                        found[os.path.basename(path)] = max(v, found.get(os.path.basename(path), v))
    return found

owner = {}  # relative path -> (part, version)
for part in parts:
    ver = versions(part)
    for root, _, files in os.walk(part):
        for f in files:
            src = os.path.join(root, f)
            rel = os.path.relpath(src, part)
            dst = os.path.join(stage, rel)
            mine = ver.get(f)
            if rel not in owner:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
                owner[rel] = (part, mine)
                continue
            if filecmp.cmp(src, dst, shallow=False):
                continue
            held_part, held = owner[rel]
            if mine is not None and (held is None or mine > held):
                shutil.copy2(src, dst)
                owner[rel] = (part, mine)
                print(f"bundle: {rel}: {os.path.basename(part)} {mine[0]} replaces {os.path.basename(held_part)} {held and held[0]}")
            elif mine is not None and held is not None and mine < held:
                print(f"bundle: {rel}: keeps {os.path.basename(held_part)} {held[0]} over {os.path.basename(part)} {mine[0]}")
            else:
                print(f"bundle: WARNING {rel} differs between {os.path.basename(held_part)} and {os.path.basename(part)} at the same version; kept the first")
EOF
rm -f "$stage"/libtorch*.so "$stage"/libc10*.so "$stage"/libgomp*.so* "$stage"/*.pdb "$stage"/createdump
# The shipped demo model (13.6 MB) stays out unless asked for (BUNDLE_DEMO_MODEL=1): a device call carries at most
# 64 MiB, and runs there usually train or evaluate a model of their own, which must fit beside the bundle.
[ "${BUNDLE_DEMO_MODEL:-0}" = 1 ] || rm -rf "$stage/demo-model"
for p in $apps; do
  app=$(basename "$p"); app=${app/ApbCluster.Cli/apb}; app=${app/ApbCluster.Node/apb-node}
  [ -x "$stage/$app" ] || { echo "gpu-bundle: $app missing from the bundle" >&2; exit 1; }
done
tar -cJf "$out" -C "$stage" .
rm -rf "$stage" "$parts"
ls -la "$out" >&2

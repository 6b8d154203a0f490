#!/usr/bin/env bash
# Rebuilds ApbCluster.sln from every project in the tree (resolves merge conflicts in the .sln).
set -euo pipefail
cd "$(dirname "$0")"
rm -f ApbCluster.sln
dotnet new sln -n ApbCluster --format sln -o . >/dev/null
dotnet sln ApbCluster.sln add $(find native-interop src tests -name '*.csproj' | sort) >/dev/null

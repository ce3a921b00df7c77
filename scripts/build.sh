#!/usr/bin/env bash
# Configures and builds tune in build/ (Release with debug info). Extra arguments go to CMake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${TUNE_JOBS:-$(nproc)}
# ccache keys on relative paths under the project, so a fresh clone (CI) reuses earlier compiles.
export CCACHE_BASEDIR="$root"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$jobs"

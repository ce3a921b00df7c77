#!/usr/bin/env bash
# Configures and builds tune in build/ (Release: -O2, no debug info). Extra arguments go to CMake
# (e.g. -DTUNE_UNITY=OFF).
#   TUNE_JOBS=N                        parallel compile jobs (default: all cores)
#   TUNE_TARGET=tune                   build only that target (the quickstart: the binary, no tests)
#   TUNE_BUILD_TYPE=RelWithDebInfo     for a debugger
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${TUNE_JOBS:-$(nproc)}
# ccache keys on relative paths under the project, so a fresh clone (CI) reuses earlier compiles.
export CCACHE_BASEDIR="$root"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${TUNE_BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build build -j"$jobs" ${TUNE_TARGET:+--target "$TUNE_TARGET"}

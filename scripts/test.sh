#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test (unit, cli, parity, proof).
#   TUNE_TEST_LABELS=unit bash scripts/test.sh    runs a subset (ctest -L regex)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/build.sh
cd build
args=(--output-on-failure -j"${TUNE_TEST_JOBS:-2}" --timeout 1500)
[ -n "${TUNE_TEST_LABELS:-}" ] && args+=(-L "$TUNE_TEST_LABELS")
ctest "${args[@]}"

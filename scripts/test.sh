#!/usr/bin/env bash
# Installs what is needed, builds, and runs all the tests: labels unit, cli, parity, gpu (skipped
# without a GPU) and proof (the learning proofs, one at a time: ~6 minutes on 2 cores).
#   TUNE_TEST_LABELS=unit bash scripts/test.sh     a subset (ctest -L regex)
#   TUNE_TEST_LABELS=proof bash scripts/test.sh    the learning proofs only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/build.sh
cd build
args=(--output-on-failure -j"${TUNE_TEST_JOBS:-2}" --timeout 1500)
if [ -n "${TUNE_TEST_LABELS:-}" ]; then
  args+=(-L "$TUNE_TEST_LABELS")
fi
ctest "${args[@]}"

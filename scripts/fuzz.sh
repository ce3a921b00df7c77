#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz (clang, ASan+UBSan, torch-free) and fuzzes the
# safetensors reader (or, with FUZZ_TARGET=gguf, the GGUF reader and mapping) for N executions
# (default 1,000,000), one job, one worker.
#   [FUZZ_TARGET=safetensors|gguf] scripts/fuzz.sh [N] [extra libFuzzer flags...]
# The committed seed corpus (tests/fuzz/corpus/<target>) is copied into build-fuzz, so new
# corpus entries stay out of the source tree; a crash leaves its input in build-fuzz/artifacts/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-1000000}
shift || true
target=${FUZZ_TARGET:-safetensors}

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTUNE_WITH_TORCH=OFF -DTUNE_BUILD_TESTS=OFF -DTUNE_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target "fuzz_$target"

work=build-fuzz/fuzz-$target
mkdir -p "$work/corpus" "$work/artifacts"
cp -n tests/fuzz/corpus/"$target"/* "$work/corpus/" 2>/dev/null || true
cd "$work"
rm -f fuzz-0.log
start=$(date +%s)
status=0
# -jobs=1 runs the fuzzer in a child process that logs to fuzz-0.log; -runs bounds that job.
"../bin/fuzz_$target" corpus -runs="$runs" -jobs=1 -workers=1 -artifact_prefix=artifacts/ \
  -print_final_stats=1 "$@" || status=$?
end=$(date +%s)
tail -n 30 fuzz-0.log 2>/dev/null || true
echo "fuzz.sh: runs=$runs wall=$((end - start))s exit=$status corpus=$(ls corpus | wc -l) artifacts=$(ls artifacts | wc -l)"
exit $status

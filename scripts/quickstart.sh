#!/usr/bin/env bash
# Installs what the tune binary needs, builds it, and runs the main job on the built-in tiny model:
# a random tiny model learns 2-digit addition with `tune sft` (configs/sft/tiny.yaml runs as it is:
# builtin:tiny and synth: data, docs/presets.md), then answers a question with `tune generate`.
# The tests' extra packages and executables come with scripts/test.sh. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "[quickstart] $*"; }
t0=$(date +%s)

say "1/3 setup: Debian build packages and torch 2.13.0 (CPU) in .venv (~1-3 min the first time, seconds after)"
bash scripts/setup.sh --minimal

say "2/3 build: compiling the tune binary, ~90 files (~10 min on 2 cores the first time, seconds when nothing changed)"
TUNE_TARGET=tune bash scripts/build.sh

tune=build/bin/tune
say "3/3 train: tune sft --config configs/sft/tiny.yaml, 1200 steps from a random start (~3 min on 2 cores)"
$tune sft --config configs/sft/tiny.yaml --overwrite   # a rerun replaces the earlier run
say "ask: 57+38= ->"
$tune generate --model runs/sft-tiny/final --prompt "57+38=" --max-new-tokens 8
say "done in $(( $(date +%s) - t0 )) s. Next: docs/presets.md (the other tiny presets), README.md (commands)"

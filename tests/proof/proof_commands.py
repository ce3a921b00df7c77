"""What the preference proofs share: `tune` run as a user runs it (the commands in the configs'
headers, relative paths under a working directory, 2 threads, the cache of built-in models in that
directory), and the addition task those commands start from."""
import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Training a 1M-parameter model from scratch is chaotic in float rounding: ATen's AVX-512 kernels
# train the same SFT run to another model than its AVX2 ones (400 steps: 61% vs 26% greedy exact
# match on an AMD EPYC, 2026-12-02), and the proofs were tuned where ATen chose AVX2. The proofs pin
# ATen's kernel dispatch to AVX2 (a no-op where AVX2 is the best it has); tests/CMakeLists.txt sets
# the same. Pinned, an AMD EPYC with AVX-512 reproduced the AVX2 machine's proof figures exactly
# (GRPO 26% -> 61%, DPO 15.7% -> 89.3%). (MKL_CBWR=AVX2 on top changed the RL runs again: not set.)
PINNED_CPU_ISA = {"ATEN_CPU_CAPABILITY": "avx2"}
for _k, _v in PINNED_CPU_ISA.items():
    os.environ.setdefault(_k, _v)

TUNE = os.environ.get("TUNE_BIN")
SOURCE = Path(os.environ.get("TUNE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
needs_tune = pytest.mark.skipif(not TUNE, reason="TUNE_BIN not set (run through ctest)")


def tune(*args, cwd, capture=False):
    """Runs tune in `cwd`; returns its stdout when `capture`."""
    r = subprocess.run([TUNE, *map(str, args)], check=True, cwd=cwd, capture_output=capture, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2", "TUNE_CACHE_DIR": str(Path(cwd) / "cache")})
    return r.stdout


def make_tiny_model_and_addition_task(cwd):
    """runs/tiny-model, runs/data/addition-train.jsonl (5000) and addition-test.jsonl (300 unseen)."""
    tune("init-model", "--preset", "tiny", "--out", "runs/tiny-model", cwd=cwd)
    tune("data", "synth", "--task", "addition", "--count", 5000, "--seed", 1, "--out", "runs/data/addition-train.jsonl",
         cwd=cwd)
    tune("data", "synth", "--task", "addition", "--count", 300, "--seed", 2, "--exclude", "runs/data/addition-train.jsonl",
         "--out", "runs/data/addition-test.jsonl", cwd=cwd)


SFT_SHORT_STEPS = 400  # the SFT preset stopped early: an imperfect start that DPO and GRPO improve (one shared run)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_runs(name, key_parts, make, cwd, marker):
    """Makes `runs/...` once per tune binary and `key_parts` in a cache beside the binary's build
    directory (`make(work_dir)` runs the commands there), then copies them into `cwd`. The commands are
    the same as a user's and their result deterministic, so the proofs that start from one share it."""
    isa = ",".join(f"{k}={os.environ.get(k, '')}" for k in PINNED_CPU_ISA)
    key = hashlib.sha256("".join([_sha256(TUNE), isa, *key_parts]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TUNE_PROOF_CACHE", Path(TUNE).resolve().parents[1] / "proof-cache")) / f"{name}-{key}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / marker).exists():
            shutil.rmtree(cache, ignore_errors=True)
            work = cache.with_name(cache.name + ".tmp")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            make(work)
            work.rename(cache)
    shutil.copytree(cache / "runs", Path(cwd) / "runs", dirs_exist_ok=True)


def make_reversal_reward_model(cwd):
    """runs/rm-tiny: the reward-model preset as it is (`tune rm --config configs/rm/tiny.yaml`), shared
    by the reward-model proof and the PPO proof."""
    config = SOURCE / "configs/rm/tiny.yaml"
    cached_runs("rm-tiny", [_sha256(config)], lambda work: tune("rm", "--config", config, cwd=work), cwd,
                 "runs/rm-tiny/final/config.json")


def make_short_sft_model(cwd, steps=SFT_SHORT_STEPS):
    """The addition task (make_tiny_model_and_addition_task) and runs/sft-tiny-short: the SFT preset
    stopped at `steps` steps, as its header's commands make it (cached: cached_runs)."""
    config = SOURCE / "configs/sft/tiny.yaml"

    def make(work):
        make_tiny_model_and_addition_task(work)
        tune("sft", "--config", config, "--max-steps", steps, "-o", "runs/sft-tiny-short", "eval.every=0", cwd=work)

    cached_runs("sft-short", [_sha256(config), str(steps)], make, cwd, "runs/sft-tiny-short/final/config.json")

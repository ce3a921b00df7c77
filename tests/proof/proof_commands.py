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


SFT_SHORT_STEPS = 300  # the SFT preset stopped early: an imperfect start that DPO (and RL) can improve


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_short_sft_model(cwd, steps=SFT_SHORT_STEPS):
    """The addition task (make_tiny_model_and_addition_task) and runs/sft-tiny-short: the SFT preset
    stopped at `steps` steps, as its header's commands make it. The proofs that start from it share one
    run: it is made once per tune binary and SFT preset, in a cache beside the binary's build
    directory, and copied into `cwd` (the commands are the same; the result is deterministic)."""
    key = hashlib.sha256((_sha256(TUNE) + _sha256(SOURCE / "configs/sft/tiny.yaml") + str(steps)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TUNE_PROOF_CACHE", Path(TUNE).resolve().parents[1] / "proof-cache")) / f"sft-short-{key}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "runs/sft-tiny-short/final/config.json").exists():
            shutil.rmtree(cache, ignore_errors=True)
            work = cache.with_name(cache.name + ".tmp")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            make_tiny_model_and_addition_task(work)
            tune("sft", "--config", SOURCE / "configs/sft/tiny.yaml", "--max-steps", steps, "-o",
                 "runs/sft-tiny-short", "eval.every=0", cwd=work)
            work.rename(cache)
    shutil.copytree(cache / "runs", Path(cwd) / "runs", dirs_exist_ok=True)

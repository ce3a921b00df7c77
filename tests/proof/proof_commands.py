"""What the preference proofs share: `tune` run as a user runs it (the commands in the configs'
headers, relative paths under a working directory, 2 threads), and the addition task those
commands start from."""
import os
import subprocess
from pathlib import Path

import pytest

TUNE = os.environ.get("TUNE_BIN")
SOURCE = Path(os.environ.get("TUNE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
needs_tune = pytest.mark.skipif(not TUNE, reason="TUNE_BIN not set (run through ctest)")


def tune(*args, cwd, capture=False):
    """Runs tune in `cwd`; returns its stdout when `capture`."""
    r = subprocess.run([TUNE, *map(str, args)], check=True, cwd=cwd, capture_output=capture, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    return r.stdout


def make_tiny_model_and_addition_task(cwd):
    """runs/tiny-model, runs/data/addition-train.jsonl (5000) and addition-test.jsonl (300 unseen)."""
    tune("init-model", "--preset", "tiny", "--out", "runs/tiny-model", cwd=cwd)
    tune("data", "synth", "--task", "addition", "--count", 5000, "--seed", 1, "--out", "runs/data/addition-train.jsonl",
         cwd=cwd)
    tune("data", "synth", "--task", "addition", "--count", 300, "--seed", 2, "--exclude", "runs/data/addition-train.jsonl",
         "--out", "runs/data/addition-test.jsonl", cwd=cwd)

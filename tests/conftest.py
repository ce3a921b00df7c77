"""Shared pytest fixtures: the tune binary, a tiny model and synthetic data made with it."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("TUNE_SOURCE_DIR", Path(__file__).resolve().parents[1]))


def tune_bin() -> str:
    path = os.environ.get("TUNE_BIN", str(ROOT / "build" / "bin" / "tune"))
    if not Path(path).exists():
        pytest.skip(f"tune binary not built at {path}")
    return path


def run_tune(*args, check=True, timeout=1800, **kw):
    """Runs tune; returns the CompletedProcess (text mode)."""
    cmd = [tune_bin(), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "model"
    run_tune("init-model", "--preset", "tiny", "--seed", "0", "--out", out)
    return out


@pytest.fixture(scope="session")
def addition_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    run_tune("data", "synth", "--task", "addition", "--count", "5000", "--seed", "1", "--out", d / "train.jsonl")
    run_tune("data", "synth", "--task", "addition", "--count", "300", "--seed", "2",
             "--exclude", d / "train.jsonl", "--out", d / "test.jsonl")
    return d


# A skipped test is not a passed one: a pytest file with skips exits 77 (tests/skip_policy.py),
# which ctest reports as "Skipped".
from skip_policy import pytest_sessionfinish  # noqa: E402,F401  (a pytest hook)

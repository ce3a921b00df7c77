"""Model and data sources as configs and command lines name them: a missing model directory or file
is reported as such (exit 2); builtin:tiny is materialised once, safely when two processes race for
it; malformed synth: sources are usage errors naming the source."""
import json
import os
import subprocess

import pytest

from conftest import ROOT, tune_bin

SFT = ROOT / "configs/sft/tiny.yaml"


def tune(*args, cache, cwd=None):
    env = {**os.environ, "TUNE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([tune_bin(), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
                          stdin=subprocess.DEVNULL)


def error_of(p):
    assert p.returncode == 2, (p.returncode, p.stderr)
    return p.stderr.strip().splitlines()[-1]


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_missing_model_directory_is_named(tmp_path, cache):
    missing = tmp_path / "no-such-model"
    err = error_of(tune("sft", "--config", SFT, f"model.path={missing}", "--dry-run", cache=cache))
    assert f"model.path: model directory {missing} does not exist" in err
    err = error_of(tune("generate", "--model", missing, "--prompt", "1+1=", cache=cache))
    assert f"--model: model directory {missing} does not exist" in err
    err = error_of(tune("tokenize", "--model", missing, cache=cache))
    assert f"model directory {missing} does not exist" in err


def test_model_directory_without_config_or_tokenizer(tmp_path, cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = error_of(tune("sft", "--config", SFT, f"model.path={empty}", "--dry-run", cache=cache))
    assert f"{empty} has no config.json" in err
    (empty / "config.json").write_text("{}")
    err = error_of(tune("sft", "--config", SFT, f"model.path={empty}", "--dry-run", cache=cache))
    assert f"{empty} has no tokenizer.json or tokenizer.model" in err
    err = error_of(tune("generate", "--model", empty, "--prompt", "1+1=", cache=cache))
    assert f"{empty} has no tokenizer.json or tokenizer.model" in err


def test_missing_output_of_another_run_names_the_command(tmp_path, cache):
    err = error_of(tune("sft", "--config", ROOT / "configs/sft/tiny-lora.yaml", "--dry-run", cache=cache, cwd=tmp_path))
    assert "runs/sft-tiny/final does not exist: run `tune sft --config configs/sft/tiny.yaml` first" in err


def test_unknown_builtin_is_a_usage_error(cache):
    err = error_of(tune("generate", "--model", "builtin:huge", "--prompt", "1+1=", cache=cache))
    assert "unknown built-in model 'builtin:huge' (choose from builtin:tiny)" in err


def test_builtin_tiny_materialised_once_when_two_processes_race(tmp_path, cache):
    cmd = [tune_bin(), "generate", "--model", "builtin:tiny", "--prompt", "57+38=", "--max-new-tokens", "4"]
    env = {**os.environ, "TUNE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert len({o[0] for o in outs}) == 1  # the same model answered
    models = list((cache / "models").iterdir())
    assert len(models) == 1 and models[0].name.startswith("tiny-"), models  # no temporary copies left
    # Once there, it is reused: nothing is written again.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "materialising" not in again.stderr
    assert again.stdout == outs[0][0]


@pytest.mark.parametrize("source, message", [
    ("synth:additon?count=5", "unknown task 'additon'"),
    ("synth:addition?cnt=5", "unknown parameter 'cnt' (count, seed, digits, format, exclude)"),
    ("synth:addition?format=pairs", "unknown format 'pairs'"),
    ("synth:addition?count=five", "count must be an integer"),
    ("synth:addition?count=5&count=6", "count is given twice"),
    ("synth:addition?digits=12", "digits must be an integer in [1, 9]"),
    ("synth:addition?count=5&exclude=", "exclude is empty"),
    ("synth:addition?count=5&exclude=no-such.jsonl", "cannot open the exclusion file no-such.jsonl"),
])
def test_malformed_synth_source_is_a_usage_error(cache, source, message):
    err = error_of(tune("data", "check", "--input", source, cache=cache))
    assert message in err and (source in err or "exclusion file" in message), err


def test_synth_source_gives_rl_prompt_records(tmp_path, cache):
    """format=prompt: {prompt, reference} records (the same problems as the chat records of that seed),
    read as RL prompts; `tune data synth --format prompt` writes the same bytes."""
    source = "synth:addition?count=3&seed=1&format=prompt"
    out = tune("data", "show", "--input", source, "--model", "builtin:tiny", cache=cache)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(prompt)") == 3
    made = tmp_path / "prompts.jsonl"
    assert tune("data", "synth", "--task", "addition", "--count", 3, "--format", "prompt", "--out", made, cache=cache).returncode == 0
    chat = tmp_path / "chat.jsonl"
    assert tune("data", "synth", "--task", "addition", "--count", 3, "--out", chat, cache=cache).returncode == 0
    prompts = [json.loads(line) for line in made.read_text().splitlines()]
    chats = [json.loads(line) for line in chat.read_text().splitlines()]
    assert [p["prompt"] for p in prompts] == [c["messages"][0]["content"] for c in chats]
    assert [p["reference"] for p in prompts] == [c["answer"] for c in chats]
    for p in prompts:
        assert f"{p['prompt']}" in out.stdout

"""The tune binary as a user meets it: help, exit codes, one-line errors, config handling."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, read_jsonl, run_tune


def test_help_and_version():
    out = run_tune("--help").stdout
    for cmd in ["sft", "rm", "dpo", "ppo", "grpo", "generate", "tokenize", "merge", "init-model", "data"]:
        assert cmd in out
    assert run_tune("--version").stdout.startswith("tune ")


def test_usage_error_exit_2():
    assert run_tune("sft", "--bogus-flag", check=False).returncode == 2
    assert run_tune(check=False).returncode == 2


def test_unknown_config_key_names_key_and_file(tmp_path, tiny_model):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"model:\n  path: {tiny_model}\noptim:\n  lrr: 0.1\n")
    p = run_tune("sft", "--config", cfg, "--dry-run", check=False)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()[-1]
    assert "optim.lrr" in err and "bad.yaml" in err and "did you mean 'optim.lr'" in err


def test_wrong_type_and_range_from_override_are_named(tmp_path, tiny_model):
    p = run_tune("sft", f"model.path={tiny_model}", "optim.lr=-1", "--dry-run", check=False)
    assert p.returncode == 2
    assert "optim.lr must be > 0" in p.stderr and "command line" in p.stderr
    p = run_tune("sft", f"model.path={tiny_model}", "train.batch_size=many", "--dry-run", check=False)
    assert p.returncode == 2 and "train.batch_size expects an integer" in p.stderr


def test_missing_data_file_is_one_line_runtime_error(tmp_path, tiny_model):
    p = run_tune("sft", f"model.path={tiny_model}", f"data.datasets[0].path={tmp_path}/nope.jsonl", "--dry-run",
                 check=False)
    assert p.returncode in (1, 2)
    assert "nope.jsonl" in p.stderr
    assert "Traceback" not in p.stderr and "frame #" not in p.stderr


def test_broken_jsonl_names_file_and_line(tmp_path, tiny_model):
    data = tmp_path / "broken.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{oops\n')
    p = run_tune("sft", f"model.path={tiny_model}", f"data.datasets[0].path={data}", "--dry-run", check=False)
    assert p.returncode == 1
    assert "broken.jsonl:2" in p.stderr


def test_init_model_writes_hf_layout(tiny_model):
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"]:
        assert (tiny_model / name).exists(), name
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["vocab_size"] == 515


def test_tokenize_round_trip_and_render(tiny_model):
    inp = '{"text": "12+34= hello"}\n'
    ids = json.loads(run_tune("tokenize", "--model", tiny_model, input=inp).stdout)["ids"]
    assert len(ids) > 3
    back = run_tune("tokenize", "--model", tiny_model, "--decode", input=json.dumps({"ids": ids}) + "\n").stdout
    assert json.loads(back)["text"] == "12+34= hello"
    chat = '{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}\n'
    text = json.loads(run_tune("tokenize", "--model", tiny_model, "--render", input=chat).stdout)["text"]
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_generate_is_deterministic_and_logprobs_present(tmp_path, tiny_model):
    a = run_tune("generate", "--model", tiny_model, "--prompt", "1+1=", "--max-new-tokens", "5").stdout
    b = run_tune("generate", "--model", tiny_model, "--prompt", "1+1=", "--max-new-tokens", "5").stdout
    assert a == b
    inp = tmp_path / "p.jsonl"
    inp.write_text('{"prompt": "1+2="}\n{"prompt": "33+44="}\n')
    out = [json.loads(l) for l in run_tune("generate", "--model", tiny_model, "--input", inp, "--temperature", "0.8",
                                            "--seed", "3", "--max-new-tokens", "4", "--logprobs").stdout.splitlines()]
    assert len(out) == 2
    for rec in out:
        assert "completion" in rec and rec["finish_reason"] in ("stop", "length")
        assert all(lp <= 0 for lp in rec["logprobs"])


def test_every_config_dry_runs(tmp_path, tiny_model, addition_data):
    """CI dry-runs every file in configs/ (real-model presets against the tiny model and data)."""
    configs = sorted((ROOT / "configs").rglob("*.yaml"))
    assert configs
    for cfg in configs:
        kind = cfg.parent.name
        overrides = [f"model.path={tiny_model}", f"output_dir={tmp_path / cfg.stem}"]
        if kind == "sft":
            overrides += [f"data.datasets[0].path={addition_data / 'train.jsonl'}", "data.eval_path=",
                          "data.eval_fraction=0.1"]
        elif kind in ("grpo", "ppo"):
            prompts = tmp_path / "prompts.jsonl"
            if not prompts.exists():
                run_tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", "50", "--seed", "5",
                         "--out", prompts)
            overrides += [f"data.datasets[0].path={prompts}", "data.eval_path=", "data.eval_fraction=0.1"]
        elif kind in ("rm", "dpo"):
            pref = tmp_path / "pref.jsonl"
            if not pref.exists():
                run_tune("data", "synth", "--task", "addition_pref", "--count", "200", "--seed", "5", "--out", pref)
            overrides += [f"data.datasets[0].path={pref}", "data.eval_path=", "data.eval_fraction=0.1"]
        p = run_tune(kind, "--config", cfg, *overrides, "--dry-run", check=False)
        assert p.returncode == 0, f"{cfg}: {p.stderr}"


@pytest.fixture(scope="session")
def preference_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("pref") / "pref.jsonl"
    run_tune("data", "synth", "--task", "addition_pref", "--count", "400", "--seed", "5", "--out", path)
    return path


@pytest.mark.parametrize("command", ["sft", "rm", "dpo"])
def test_resume_reproduces_uninterrupted_losses(tmp_path, tiny_model, addition_data, preference_data, command):
    """On CPU with fixed threads, a run resumed from its step-4 checkpoint logs the same losses (and
    metrics) as the uninterrupted run, bit for bit."""
    common = ["--config", ROOT / f"configs/{command}/tiny.yaml", f"model.path={tiny_model}", "train.log_every=1",
              "train.threads=1", "eval.every=0", "train.batch_size=8", "optim.warmup_steps=2"]
    if command == "sft":
        common += [f"data.datasets[0].path={addition_data / 'train.jsonl'}", f"data.eval_path={addition_data / 'test.jsonl'}",
                   "eval.at_start=false", "eval.max_samples=8"]
    else:
        common += [f"data.datasets[0].path={preference_data}", "data.eval_path=", "data.eval_fraction=0.05",
                   "eval.max_pairs=8"]
    full = tmp_path / "full"
    run_tune(command, *common, "--output-dir", full, "--max-steps", "8", "train.save_every=4")
    # The same run, interrupted after its step-4 checkpoint: the later checkpoint is gone, and the
    # run resumes from checkpoint-4 (metrics past step 4 are dropped on resume).
    part = tmp_path / "part"
    run_tune(command, *common, "--output-dir", part, "--max-steps", "8", "train.save_every=4")
    shutil.rmtree(part / "checkpoint-8")
    run_tune(command, *common, "--output-dir", part, "--max-steps", "8", "train.save_every=4",
             "--resume", part / "checkpoint-4")
    timing = {"tokens_per_s", "peak_memory_bytes"}
    steps_full = {r["step"]: {k: v for k, v in r.items() if k not in timing} for r in read_jsonl(full / "metrics.jsonl") if "loss" in r}
    steps_part = {r["step"]: {k: v for k, v in r.items() if k not in timing} for r in read_jsonl(part / "metrics.jsonl") if "loss" in r}
    assert sorted(steps_full) == list(range(1, 9))
    assert steps_part == steps_full

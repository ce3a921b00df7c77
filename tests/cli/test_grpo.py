"""`tune grpo` as a user runs it on the tiny model: what a run writes, the ratio at mu = 1, exact
resume, several updates per round, dynamic sampling, and bad configs named."""
import json
import shutil

import pytest
import yaml

from conftest import ROOT, read_jsonl, run_tune


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    run_tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", "400", "--seed", "3",
             "--out", d / "train.jsonl")
    run_tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", "40", "--seed", "4",
             "--exclude", d / "train.jsonl", "--out", d / "test.jsonl")
    return d


def grpo_args(tiny_model, prompt_data, out, *extra):
    return ["grpo", "--config", ROOT / "configs/grpo/tiny.yaml", f"model.path={tiny_model}",
            f"data.datasets[0].path={prompt_data / 'train.jsonl'}", f"data.eval_path={prompt_data / 'test.jsonl'}",
            "--output-dir", out, "train.threads=1", "train.log_every=1", "grpo.prompts_per_round=4",
            "grpo.group_size=4", "train.batch_size=8", "eval.max_prompts=16",
            "grpo.dynamic_sampling=false", *extra]  # the random model never has a right answer


def test_a_run_logs_rl_metrics_samples_and_a_ratio_of_one(tmp_path, tiny_model, prompt_data):
    out = tmp_path / "run"
    run_tune(*grpo_args(tiny_model, prompt_data, out, "--max-steps", "3", "eval.every=0"))
    recs = read_jsonl(out / "metrics.jsonl")
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ["reward", "reward_std", "reward/correct", "loss/policy", "entropy", "clip_ratio/low", "clip_ratio/high",
                "ratio/mean", "ratio/min", "ratio/max", "completion_length", "truncated", "zero_variance_groups",
                "sampler_logp_gap_max", "time/generate", "time/train", "rollout_tokens_per_s"]:
        assert key in steps[0], key
    # mu = 1: the old log-probs are the trainer's own, so the ratio is exactly 1 ...
    assert all(r["ratio/min"] == 1.0 and r["ratio/max"] == 1.0 for r in steps)
    # ... and the sampler (the same model) agrees with the trainer to float rounding.
    assert all(r["sampler_logp_gap_max"] < 1e-4 for r in steps)
    evals = [r for r in recs if "eval_pass@1_greedy" in r]
    assert [r["step"] for r in evals] == [0, 3]
    samples = read_jsonl(out / "samples.jsonl")
    assert {s["kind"] for s in samples} == {"train", "eval"}
    assert (out / "final" / "config.json").exists()


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_model, prompt_data):
    common = ["--max-steps", "4", "train.save_every=2", "eval.every=0", "eval.at_start=false"]
    full, part = tmp_path / "full", tmp_path / "part"
    run_tune(*grpo_args(tiny_model, prompt_data, full, *common))
    run_tune(*grpo_args(tiny_model, prompt_data, part, *common))
    shutil.rmtree(part / "checkpoint-4")
    run_tune(*grpo_args(tiny_model, prompt_data, part, *common, "--resume", part / "checkpoint-2"))
    timing = lambda r: {k: v for k, v in r.items() if not k.startswith("time/") and "per_s" not in k
                        and k != "peak_memory_bytes"}
    a = {r["step"]: timing(r) for r in read_jsonl(full / "metrics.jsonl") if "loss" in r}
    b = {r["step"]: timing(r) for r in read_jsonl(part / "metrics.jsonl") if "loss" in r}
    assert sorted(a) == [1, 2, 3, 4]
    assert a == b


def test_ptx_mixes_sft_records_into_each_step(tmp_path, tiny_model, prompt_data):
    # The random model earns no reward (every advantage 0, policy loss 0): the step's loss is the PTX
    # term alone, coef x the NLL per PTX token, and the policy still moves toward the SFT records.
    sft = tmp_path / "sft.jsonl"
    run_tune("data", "synth", "--task", "addition", "--count", "40", "--seed", "5", "--out", sft)
    out = tmp_path / "run"
    p = run_tune(*grpo_args(tiny_model, prompt_data, out, "--max-steps", "6", "eval.every=0", "eval.at_start=false",
                            f"ptx.path={sft}", "ptx.coef=0.5", "ptx.share=0.25", "optim.lr=1e-3"))
    assert "ptx: 40 SFT records" in p.stderr and "4 per policy step" in p.stderr  # 16 completions a step
    steps = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    for r in steps:
        assert r["loss/ptx"] > 0
        assert r["loss"] == pytest.approx(r["loss/policy"] + 0.5 * r["loss/ptx"], rel=1e-5, abs=1e-6)
    assert steps[-1]["loss/ptx"] < steps[0]["loss/ptx"]
    # Prompt records are not SFT records: named with file and line.
    bad = run_tune(*grpo_args(tiny_model, prompt_data, tmp_path / "bad", "--dry-run",
                              f"ptx.path={prompt_data / 'train.jsonl'}"), check=False)
    assert bad.returncode == 2 and "ptx.path" in bad.stderr and "train.jsonl:1" in bad.stderr, bad.stderr


def test_several_updates_per_round_and_dynamic_sampling(tmp_path, tiny_model, prompt_data):
    # The random model never answers a sum, so the reward here is a format rule it meets about half
    # the time: some groups have signal, some (all equal) do not.
    config = yaml.safe_load((ROOT / "configs/grpo/tiny.yaml").read_text())
    config["reward"] = {"terms": [{"name": "has_e", "kind": "format", "pattern": "e"}]}
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    args = grpo_args(tiny_model, prompt_data, out, "--max-steps", "4", "grpo.mu=2", "grpo.mini_batches=2",
                     "grpo.dynamic_sampling=true", "grpo.max_sampling_rounds=8", "eval.every=0", "eval.at_start=false")
    args[2] = tmp_path / "grpo.yaml"
    run_tune(*args)
    steps = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]  # one round: 2 passes x 2 mini-batches
    first = steps[0]
    # Groups without signal were dropped and more prompts drawn until the round was full.
    assert 0 < first["zero_variance_groups"] < 1
    assert first["groups_sampled"] > 4 and first["rows_trained"] == 16
    # The first pass starts from the rollout's own log-probs (ratio 1 before any update); the
    # second pass sees the policy after two updates, so its ratios move away from 1.
    assert abs(steps[0]["ratio/min"] - 1) < 1e-5 and abs(steps[0]["ratio/max"] - 1) < 1e-5
    assert steps[2]["ratio/min"] < 1.0 < steps[2]["ratio/max"]


def test_bad_configs_are_named(tmp_path, tiny_model, prompt_data):
    p = run_tune(*grpo_args(tiny_model, prompt_data, tmp_path / "a", "reward.terms[0].kind=nope", "--dry-run"),
                 check=False)
    assert p.returncode == 2 and "reward.terms[0].kind" in p.stderr
    p = run_tune(*grpo_args(tiny_model, prompt_data, tmp_path / "b", "grpo.mini_batches=3", "--dry-run"), check=False)
    assert p.returncode == 2 and "grpo.mini_batches" in p.stderr


def test_rounds_without_any_signal_stop_the_run_with_the_remedy(tmp_path, tiny_model, prompt_data):
    # The random model never answers a sum: with dynamic sampling no round has a group to learn from.
    p = run_tune(*grpo_args(tiny_model, prompt_data, tmp_path / "run", "--max-steps", "3", "grpo.dynamic_sampling=true",
                            "grpo.max_sampling_rounds=1", "eval.at_start=false"), check=False)
    assert p.returncode == 1
    assert "rounds in a row had no group with reward variance" in p.stderr and "tune probe" in p.stderr
    assert not (tmp_path / "run" / "final").exists()

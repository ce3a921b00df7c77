"""`tune ppo` as a user runs it on the tiny model with a (briefly trained) tiny reward model: what a
run writes, the ratio and KL before any update, the critic saved beside the policy and restored on
resume (exact), the critic's warm-up with the policy frozen, a critic from the policy, the
critic-free estimators, the dry-run plan of the roles, and bad configs named."""
import json
import shutil

import pytest

from conftest import ROOT, read_jsonl, run_tune


@pytest.fixture(scope="session")
def reverse_prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("reverse")
    run_tune("data", "synth", "--task", "reverse", "--digits", "4", "--format", "prompt", "--count", "400", "--seed", "23",
             "--out", d / "train.jsonl")
    run_tune("data", "synth", "--task", "reverse", "--digits", "4", "--format", "prompt", "--count", "40", "--seed", "24",
             "--exclude", d / "train.jsonl", "--out", d / "test.jsonl")
    return d


@pytest.fixture(scope="session")
def reward_model(tmp_path_factory, tiny_model):
    """A reversal reward model trained for a few steps from the tiny model (its scores need not be good:
    these tests check the machinery, the learning proof lives in tests/proof)."""
    d = tmp_path_factory.mktemp("rm")
    run_tune("data", "synth", "--task", "reverse_pref", "--digits", "4", "--count", "200", "--seed", "11",
             "--out", d / "pref.jsonl")
    run_tune("rm", "--config", ROOT / "configs/rm/tiny.yaml", f"model.path={tiny_model}",
             f"data.datasets[0].path={d / 'pref.jsonl'}", "data.eval_path=", "data.eval_fraction=0.1",
             "--output-dir", d / "run", "--max-steps", "5", "train.threads=1", "train.batch_size=8", "eval.every=0",
             "eval.max_pairs=16", "rm.calibration_pairs=16")
    return d / "run" / "final"


@pytest.fixture(scope="session")
def lora_reward_model(tmp_path_factory, tiny_model):
    """The same, trained as LoRA adapters over the tiny model (the policy's base)."""
    d = tmp_path_factory.mktemp("rm-lora")
    run_tune("data", "synth", "--task", "reverse_pref", "--digits", "4", "--count", "200", "--seed", "11",
             "--out", d / "pref.jsonl")
    run_tune("rm", "--config", ROOT / "configs/rm/tiny.yaml", f"model.path={tiny_model}", "method=lora",
             f"data.datasets[0].path={d / 'pref.jsonl'}", "data.eval_path=", "data.eval_fraction=0.1",
             "--output-dir", d / "run", "--max-steps", "5", "train.threads=1", "train.batch_size=8", "eval.every=0",
             "eval.max_pairs=16", "rm.calibration_pairs=16")
    return d / "run" / "final"


def ppo_args(tiny_model, reward_model, prompts, out, *extra):
    # Rounds of 8 completions, mini-batches of 4, 2 PPO epochs: 4 optimizer steps per round.
    return ["ppo", "--config", ROOT / "configs/ppo/tiny.yaml", f"model.path={tiny_model}",
            f"reward.terms[0].path={reward_model}", f"data.datasets[0].path={prompts / 'train.jsonl'}",
            f"data.eval_path={prompts / 'test.jsonl'}", "--output-dir", out, "train.threads=1", "train.log_every=1",
            "ppo.prompts_per_round=8", "ppo.mini_batch_size=4", "ppo.ppo_epochs=2", "train.batch_size=4",
            "eval.max_prompts=8", "eval.batch_size=8", "critic.warmup_steps=0", *extra]


def steps_of(out):
    return [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]


def test_a_run_logs_ppo_metrics_and_saves_the_critic(tmp_path, tiny_model, reward_model, reverse_prompts):
    out = tmp_path / "run"
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, out, "--max-steps", "4", "eval.every=0"))
    steps = steps_of(out)
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for key in ["reward", "reward_std", "reward/preference", "reward/exact", "reward_with_kl", "non_score_reward", "kl",
                "kl_seq", "kl_max", "kl_coef", "loss/policy", "loss/value", "value/loss", "value/clip_frac", "value/mean",
                "returns/mean", "value/error", "explained_variance", "advantages/mean", "advantages/std", "entropy",
                "clip_ratio/low", "clip_ratio/high", "approx_kl", "ratio/min", "ratio/max", "critic/lr",
                "completion_length", "completion_length_max", "truncated", "sampler_logp_gap_max", "time/generate",
                "time/score", "time/reference", "time/critic", "time/train", "time/critic_train",
                "rollout_tokens_per_s"]:
        assert key in steps[0], key
    first = steps[0]
    # The reward model's raw score beside the normalised one the trainer uses ((r - mean) / std of
    # the RM's own calibration, normalize: stats): the mean of a linear map is the map of the mean.
    stats = json.loads((reward_model / "reward_stats.json").read_text())
    for r in steps:
        assert r["reward/preference"] == pytest.approx((r["reward/preference/raw"] - stats["mean"]) / stats["std"],
                                                       rel=1e-6, abs=1e-9)
    # Before any update the policy is the reference (KL 0), its log-probs are the sampler's, and
    # the first mini-batch's ratio is 1.
    assert abs(first["kl"]) < 1e-6 and abs(first["kl_seq"]) < 1e-5
    assert first["kl_coef"] == pytest.approx(0.05)
    assert first["sampler_logp_gap_max"] < 1e-4
    assert abs(first["ratio/min"] - 1) < 1e-5 and abs(first["ratio/max"] - 1) < 1e-5
    # The second PPO epoch sees the policy after two updates: its ratios move away from 1.
    assert steps[2]["ppo_epoch"] == 1 and steps[2]["ratio/min"] < 1.0 < steps[2]["ratio/max"]
    assert all(r["policy_frozen"] is False for r in steps)
    assert all(r["lr"] == pytest.approx(1e-4) and r["critic/lr"] == pytest.approx(3e-4) for r in steps)
    evals = [r for r in read_jsonl(out / "metrics.jsonl") if "eval_pass@1_greedy" in r]
    assert [r["step"] for r in evals] == [0, 4]
    assert {s["kind"] for s in read_jsonl(out / "samples.jsonl")} == {"train", "eval"}
    assert (out / "final" / "config.json").exists()
    # The critic: a value model in the reward-model layout (full, from the full reward model).
    critic_config = json.loads((out / "critic" / "config.json").read_text())
    assert critic_config["architectures"][0].endswith("ForSequenceClassification")
    assert (out / "critic" / "model.safetensors").exists()
    assert json.loads((out / "critic" / "reward_stats.json").read_text())["kind"] == "ppo_critic"


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_model, reward_model, reverse_prompts):
    # Adaptive KL: the coefficient moves each round, so its state must travel with the checkpoint too.
    common = ["--max-steps", "8", "train.save_every=4", "eval.every=0", "eval.at_start=false", "kl.kind=adaptive",
              "kl.horizon=50", "ppo.reward_scaling=true"]  # the return statistics travel too
    full, part = tmp_path / "full", tmp_path / "part"
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, full, *common))
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, part, *common))
    names = [p["name"] for p in json.loads((part / "checkpoint-4" / "state.json").read_text())["parameters"]]
    assert "critic.score.weight" in names and any(n.startswith("critic.model.") for n in names)
    shutil.rmtree(part / "checkpoint-8")
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, part, *common, "--resume", part / "checkpoint-4"))
    timing = lambda r: {k: v for k, v in r.items() if not k.startswith("time/") and "per_s" not in k
                        and k != "peak_memory_bytes"}
    a = {r["step"]: timing(r) for r in steps_of(full)}
    b = {r["step"]: timing(r) for r in steps_of(part)}
    assert sorted(a) == list(range(1, 9))
    assert a[5]["kl_coef"] != a[1]["kl_coef"]  # the controller moved after the first round
    assert a[5]["reward_scale"] != a[1]["reward_scale"] and a[1]["reward_scale"] > 0
    assert a == b


def test_ptx_mixes_sft_records_into_each_policy_step(tmp_path, tiny_model, reward_model, reverse_prompts):
    sft = tmp_path / "sft.jsonl"
    run_tune("data", "synth", "--task", "reverse", "--digits", "4", "--count", "50", "--seed", "5", "--out", sft)
    common = ["--max-steps", "8", "train.save_every=4", "eval.every=0", "eval.at_start=false", f"ptx.path={sft}",
              "ptx.coef=0.5", "ptx.share=0.5"]  # 2 SFT records per mini-batch of 4
    full, part = tmp_path / "full", tmp_path / "part"
    p = run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, full, *common))
    assert "ptx: 50 SFT records" in p.stderr and "2 per policy step" in p.stderr
    steps = steps_of(full)
    for r in steps:
        # The step's loss is the policy's plus coef x the NLL per PTX token (no entropy bonus here).
        assert r["loss/ptx"] > 0
        assert r["loss"] == pytest.approx(r["loss/policy"] + 0.5 * r["loss/ptx"], rel=1e-5, abs=1e-6)
    assert len({round(r["loss/ptx"], 6) for r in steps}) > 1  # each step sees other records
    # The records a step mixes in follow from its step count: a resumed run repeats the full one.
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, part, *common))
    shutil.rmtree(part / "checkpoint-8")
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, part, *common, "--resume", part / "checkpoint-4"))
    timing = lambda r: {k: v for k, v in r.items() if not k.startswith("time/") and "per_s" not in k
                        and k != "peak_memory_bytes"}
    assert [timing(r) for r in steps_of(part)] == [timing(r) for r in steps]


def test_reward_scaling_divides_the_rewards_by_the_returns_std(tmp_path, tiny_model, reward_model, reverse_prompts):
    common = ["--max-steps", "4", "eval.every=0", "eval.at_start=false"]
    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, plain, *common))
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, scaled, *common, "ppo.reward_scaling=true"))
    a, b = steps_of(plain)[0], steps_of(scaled)[0]
    assert a["reward_scale"] == 1.0
    # The same first round (nothing has moved yet): the same rewards, reported unscaled.
    assert b["reward_with_kl"] == pytest.approx(a["reward_with_kl"]) and b["reward"] == pytest.approx(a["reward"])
    # Before any update the KL is 0, so a completion's return is its score: the divisor is the std of
    # the round's scores (population std, as the running statistics keep it).
    assert b["reward_scale"] == pytest.approx(a["reward_std"], rel=1e-4) and b["reward_scale"] != 1.0
    # The advantages differ (GAE adds the critic's unscaled values to the scaled rewards).
    assert b["advantages/mean"] != pytest.approx(a["advantages/mean"])


def test_lora_roles_share_one_base_and_match_separate_models(tmp_path, tiny_model, lora_reward_model, reverse_prompts):
    # Policy (LoRA), critic (the LoRA reward model's adapters, trained on) and reward model (LoRA) over
    # one tiny base: one copy of the base with an adapter switch per projection, or three models.
    common = ["method=lora", "--max-steps", "4", "eval.every=2", "eval.at_start=false"]
    shared, separate = tmp_path / "shared", tmp_path / "separate"
    p = run_tune(*ppo_args(tiny_model, lora_reward_model, reverse_prompts, shared, *common))
    assert "shared base: one copy of" in p.stderr and "for policy, critic, reward model 'preference'" in p.stderr
    q = run_tune(*ppo_args(tiny_model, lora_reward_model, reverse_prompts, separate, *common, "ppo.shared_base=off"))
    assert "shared base: no, ppo.shared_base is off" in q.stderr
    timing = lambda r: {k: v for k, v in r.items() if not k.startswith("time/") and "per_s" not in k
                        and k != "peak_memory_bytes"}
    a = [timing(r) for r in read_jsonl(shared / "metrics.jsonl")]
    b = [timing(r) for r in read_jsonl(separate / "metrics.jsonl")]
    assert len([r for r in a if "loss" in r]) == 4
    # The roles switch correctly: every score, value, ratio and loss is the separate models' one.
    assert a == b
    for name in ["final/adapter_model.safetensors", "critic/adapter_model.safetensors"]:
        assert (shared / name).read_bytes() == (separate / name).read_bytes(), name
    # The plan says so before anything loads; `on` names why it cannot share.
    p = run_tune(*ppo_args(tiny_model, lora_reward_model, reverse_prompts, tmp_path / "dry", *common, "--dry-run"))
    assert "dry run: shared base: one copy of" in p.stderr
    bad = run_tune(*ppo_args(tiny_model, lora_reward_model, reverse_prompts, tmp_path / "bad", "ppo.shared_base=on",
                             "--dry-run"), check=False)
    assert bad.returncode == 2 and "ppo.shared_base is on, but the policy is fully fine-tuned" in bad.stderr


def test_critic_warmup_freezes_the_policy(tmp_path, tiny_model, reward_model, reverse_prompts):
    out = tmp_path / "run"
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, out, "--max-steps", "8", "critic.warmup_steps=4",
                       "eval.every=0", "eval.at_start=false"))
    steps = steps_of(out)
    assert [r["step"] for r in steps] == list(range(1, 9))
    warm, after = steps[:4], steps[4:]
    assert all(r["policy_frozen"] is True and "loss/policy" not in r and r["lr"] == 0 for r in warm)
    assert all("value/loss" in r for r in warm)
    assert all(r["policy_frozen"] is False and "loss/policy" in r for r in after)
    # The second round is sampled by a policy that has not moved: still the reference.
    assert abs(after[0]["kl"]) < 1e-6


def test_a_critic_from_the_policy_and_the_critic_free_estimators(tmp_path, tiny_model, reward_model, reverse_prompts):
    out = tmp_path / "policy-critic"
    run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, out, "--max-steps", "2", "critic.init=policy",
                       "eval.every=0", "eval.at_start=false"))
    assert [r["step"] for r in steps_of(out)] == [1, 2]
    assert (out / "critic" / "model.safetensors").exists()
    for estimator in ["rloo", "reinforce_baseline", "reinforce_pp"]:
        out = tmp_path / estimator
        run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, out, "--max-steps", "2",
                           f"ppo.estimator={estimator}", "ppo.group_size=2", "ppo.prompts_per_round=4",
                           "eval.every=0", "eval.at_start=false"))
        steps = steps_of(out)
        assert [r["step"] for r in steps] == [1, 2]
        assert "loss/policy" in steps[0] and "value/loss" not in steps[0] and "explained_variance" not in steps[0]
        assert not (out / "critic").exists()


def test_the_dry_run_states_every_role(tmp_path, tiny_model, reward_model, reverse_prompts):
    p = run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, tmp_path / "run", "--dry-run"))
    err = p.stderr
    for role in ["role policy", "role reference", "role critic", "role reward model 'preference'"]:
        assert role in err, role
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_bad_configs_are_named(tmp_path, tiny_model, reward_model, reverse_prompts):
    def fails(*extra):
        p = run_tune(*ppo_args(tiny_model, reward_model, reverse_prompts, tmp_path / "x", *extra, "--dry-run"),
                     check=False)
        assert p.returncode == 2, p.stderr
        return p.stderr

    assert "ppo.mini_batch_size" in fails("ppo.mini_batch_size=3")
    assert "ppo.group_size" in fails("ppo.estimator=rloo")
    assert "critic.warmup_steps" in fails("critic.warmup_steps=100", "--max-steps", "4")
    assert "kl.values" in fails("kl.kind=schedule")
    assert "ppo.estimator" in fails("ppo.estimator=nope")
    # PTX records must be SFT records: a prompt file is named with its first line.
    err = fails(f"ptx.path={reverse_prompts / 'train.jsonl'}")
    assert "ptx.path" in err and "train.jsonl:1" in err and "SFT record" in err, err

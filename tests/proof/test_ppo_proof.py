"""Learning proofs for `tune ppo`, the user's RLHF pipeline on the tiny model, with the commands of
configs/ppo/tiny.yaml's header (docs/ppo.md):
1. `tune sft` on digit reversal stopped early: its sampled (T=1) exact-reversal rate on 300 held-out
   prompts lies in 20-50%.
2. The reversal reward model of configs/rm/tiny.yaml (shared with the RM proof) prefers the exact
   reversal to that policy's own wrong samples.
3. `tune ppo` with that reward model raises the held-out sampled exact-reversal rate, judged by the
   exact rule, by >= 25 points, while the mean per-sequence KL over the last 20% of steps stays within
   2x the adaptive controller's target; the symptom watcher raises nothing.
4. A deliberately exploitable reward (one that pays for length) is hacked, and the watcher says so
   within the run.
"""
import json
import shlex

import pytest
import yaml

from proof_commands import SOURCE, cached_runs, _sha256, make_reversal_reward_model, needs_tune, tune

pytestmark = needs_tune
PRESET = SOURCE / "configs/ppo/tiny.yaml"


@pytest.fixture(scope="module")
def preset():
    return yaml.safe_load(PRESET.read_text())


def make_reversal_policy(cwd, preset):
    """runs/sft-reverse-short by the preset's model.made_by (the command its header lists), and the
    held-out prompts of the header's file commands."""
    made_by = shlex.split(preset["model"]["made_by"])
    assert made_by[:4] == ["tune", "sft", "--config", "configs/sft/tiny.yaml"]
    args = ["sft", "--config", SOURCE / "configs/sft/tiny.yaml", *made_by[4:]]
    cached_runs("sft-reverse-short", [_sha256(SOURCE / "configs/sft/tiny.yaml"), *made_by],
                lambda work: tune(*args, cwd=work), cwd, "runs/sft-reverse-short/final/config.json")
    tune("data", "synth", "--task", "reverse", "--digits", 4, "--count", 5000, "--seed", 21,
         "--out", "runs/data/reverse-train.jsonl", cwd=cwd)
    tune("data", "synth", "--task", "reverse", "--digits", 4, "--format", "prompt", "--count", 300, "--seed", 22,
         "--exclude", "runs/data/reverse-train.jsonl", "--out", "runs/data/reverse-prompts-test.jsonl", cwd=cwd)
    return cwd / "runs/data/reverse-prompts-test.jsonl"


def sampled(model, prompts_file, cwd):
    """One completion per held-out prompt at T=1 (fixed seed), judged by the exact rule."""
    out = tune("-q", "generate", "--model", model, "--input", prompts_file, "--temperature", 1.0, "--seed", 7,
               "--max-new-tokens", 8, "--batch-size", 100, cwd=cwd, capture=True)
    recs = [json.loads(line) for line in out.splitlines()]
    for r in recs:
        r["exact"] = r["completion"].strip() == r["reference"]
    return recs


def rate(recs):
    return sum(r["exact"] for r in recs) / len(recs)


def train_steps(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line and '"kl_seq"' in line]


def symptoms(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"symptom"' in line]


def test_ppo_with_the_reward_model_raises_sampled_exact_reversal(tmp_path, preset):
    test = make_reversal_policy(tmp_path, preset)
    assert preset["reward"]["terms"][0]["made_by"] == "tune rm --config configs/rm/tiny.yaml"
    make_reversal_reward_model(tmp_path)

    start = sampled("runs/sft-reverse-short/final", test, tmp_path)
    before = rate(start)
    print(f"start: sampled exact reversal {before:.3f} of {len(start)} held-out prompts")
    assert len(start) == 300
    assert 0.20 <= before <= 0.50  # an imperfect policy, as the issue asks

    # The reward model prefers the exact reversal to the policy's own wrong samples.
    pairs = tmp_path / "runs/data/own-samples-pairs.jsonl"
    wrong = [r for r in start if not r["exact"]]
    pairs.write_text("".join(json.dumps({"prompt": r["prompt"], "chosen": r["reference"], "rejected": r["completion"]})
                             + "\n" for r in wrong))
    scored = [json.loads(line) for line in
              tune("-q", "score", "--reward-model", "runs/rm-tiny/final", "--input", pairs, cwd=tmp_path,
                   capture=True).splitlines()]
    preferred = sum(s["chosen_score"] > s["rejected_score"] for s in scored) / len(scored)
    print(f"reward model: the exact reversal preferred to {preferred:.3f} of {len(scored)} wrong own samples")
    assert len(scored) == len(wrong) and preferred >= 0.95

    tune("ppo", "--config", PRESET, cwd=tmp_path)
    run = tmp_path / "runs/ppo-tiny"
    after = rate(sampled(run / "final", test, tmp_path))
    steps = train_steps(run)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_pass@1_sampled" in line]
    print(f"sampled exact reversal on {len(start)} held-out prompts: SFT {before:.3f} -> PPO {after:.3f}")
    print("reward / kl_seq / kl_coef:", [(r["step"], round(r["reward"], 3), round(r["kl_seq"], 3), round(r["kl_coef"], 4))
                                         for r in steps])
    print("eval curve (greedy, sampled):", [(r["step"], r["eval_pass@1_greedy"], r["eval_pass@1_sampled"]) for r in evals])
    assert after - before >= 0.25

    max_steps, target = preset["train"]["max_steps"], preset["kl"]["target"]
    assert preset["kl"]["kind"] == "adaptive"
    last = [r for r in steps if r["step"] > 0.8 * max_steps]
    assert len(last) >= 5
    kl_last = sum(r["kl_seq"] for r in last) / len(last)
    print(f"mean per-sequence KL over the last 20% of steps: {kl_last:.3f} (target {target})")
    assert kl_last <= 2 * target
    # The training reward (normalised RM score) rose, and a healthy run raises no symptom.
    moving = [r for r in steps if not r["policy_frozen"]]
    assert sum(r["reward"] for r in moving[-5:]) > sum(r["reward"] for r in moving[:5])
    assert symptoms(run) == []
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {"train", "eval"} <= {s["kind"] for s in samples}


def hackable_config(preset, tmp_path, output_dir, **extra):
    """The preset, its reward replaced by one that pays for every token past the first (up to the
    12-token limit) and no penalty for a completion that does not end; the exact rule still judges
    the held-out prompts. The policy learns to stop ending its answers."""
    config = dict(preset)
    config.update(output_dir=output_dir,
                  reward={"terms": [{"name": "long", "kind": "length", "unit": "tokens", "max": 1, "scale": 11, "cap": 1,
                                     "weight": -1},
                                    {"name": "exact", "kind": "answer_match", "extract": "whole", "compare": "exact",
                                     "weight": 0}]},
                  critic={"init": "policy", "lr": 3.0e-4, "warmup_steps": 0}, kl={"kind": "fixed", "init": 0.01})
    config["rollout"] = {**preset["rollout"], "max_new_tokens": 12}
    config["ppo"] = {**preset["ppo"], "missing_eos_penalty": 0}
    config["optim"] = {**preset["optim"], "lr": 3.0e-4}
    config["train"] = {**preset["train"], "max_steps": 96, "log_every": 8}
    config["eval"] = {**preset["eval"], "every": 32}
    config.update(extra)
    path = tmp_path / (output_dir.replace("/", "-") + ".yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_reward_that_pays_for_length_is_hacked_and_the_watcher_says_so(tmp_path, preset):
    test = make_reversal_policy(tmp_path, preset)
    tune("ppo", "--config", hackable_config(preset, tmp_path, "runs/ppo-hacked"), cwd=tmp_path)

    run = tmp_path / "runs/ppo-hacked"
    steps = train_steps(run)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_pass@1" in line]
    found = symptoms(run)
    print("reward / completion length:", [(r["step"], round(r["reward"], 3), r["completion_length"]) for r in steps])
    print("held-out greedy:", [(r["step"], r["eval_pass@1_greedy"]) for r in evals])
    print("symptoms:", [(s["step"], s["symptom"], s["message"]) for s in found])
    # It was hacked: the paid-for reward and the length rose while held-out exact reversal collapsed.
    assert steps[-1]["reward"] > steps[0]["reward"] + 0.2
    assert steps[-1]["completion_length"] > steps[0]["completion_length"] + 2
    assert evals[0]["eval_pass@1_greedy"] >= 0.9 and evals[-1]["eval_pass@1_greedy"] <= 0.5
    # The watcher said so during the run, before the last evaluation.
    hacking = [s for s in found if s["symptom"] == "reward_hacking"]
    assert hacking and hacking[0]["step"] < evals[-1]["step"]
    assert "reward hacking" in hacking[0]["remedy"]
    # The held-out prompts' own measurement agrees: the hacked policy rarely reverses exactly.
    assert rate(sampled(run / "final", test, tmp_path)) < 0.15

    # PTX against it: the SFT run's own records mixed into every policy step (4 per mini-batch of
    # 16, coef 1) hold the policy to the task; the exploit never takes hold and the watcher stays
    # quiet about hacking.
    sft_records = preset["model"]["made_by"].split("'data.datasets[0].path=")[1].split("'")[0]
    tune("ppo", "--config", hackable_config(preset, tmp_path, "runs/ppo-ptx",
                                            ptx={"path": sft_records, "coef": 1.0, "share": 0.25}), cwd=tmp_path)
    run = tmp_path / "runs/ppo-ptx"
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_pass@1" in line]
    print("with PTX, held-out greedy:", [(r["step"], r["eval_pass@1_greedy"]) for r in evals])
    assert min(r["eval_pass@1_greedy"] for r in evals) >= 0.9
    assert train_steps(run)[-1]["completion_length"] < 6
    assert not [s for s in symptoms(run) if s["symptom"] == "reward_hacking"]

"""Learning proof for `tune grpo`: the deliberately imperfect SFT'd tiny model (the SFT preset
stopped at 400 steps, the DPO proof's start too) trained by GRPO with the exact-answer reward raises
greedy exact match on >= 200 held-out problems by >= 30 points. Commands as in
configs/grpo/tiny.yaml's header and docs/grpo.md."""
import json

from proof_commands import SOURCE, make_short_sft_model, needs_tune, tune

pytestmark = needs_tune
GRPO_SFT_STEPS = 400  # as configs/grpo/tiny.yaml's model.made_by: ~25% greedy, enough groups with signal (the DPO proof's start too)


def greedy_accuracy(model, prompts_file, cwd):
    out = tune("-q", "generate", "--model", model, "--input", prompts_file, "--temperature", 0, "--max-new-tokens", 8,
               "--batch-size", 100, cwd=cwd, capture=True)
    recs = [json.loads(line) for line in out.splitlines()]
    return sum(r["completion"].strip() == r["reference"] for r in recs) / len(recs), len(recs)


def test_grpo_raises_greedy_exact_match(tmp_path):
    make_short_sft_model(tmp_path, steps=GRPO_SFT_STEPS)
    tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", 4000, "--seed", 31, "--exclude",
         "runs/data/addition-test.jsonl", "--out", "runs/data/addition-prompts.jsonl", cwd=tmp_path)
    tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", 300, "--seed", 2, "--exclude",
         "runs/data/addition-train.jsonl", "--out", "runs/data/addition-prompts-test.jsonl", cwd=tmp_path)
    test = tmp_path / "runs/data/addition-prompts-test.jsonl"
    held_out = [json.loads(line) for line in test.read_text().splitlines()]
    train = {json.loads(line)["prompt"] for line in (tmp_path / "runs/data/addition-prompts.jsonl").read_text().splitlines()}
    assert not train & {r["prompt"] for r in held_out}  # unseen problems

    before, n = greedy_accuracy("runs/sft-tiny-short/final", test, tmp_path)
    # tune probe on the starting model: its figures match an independent count over its samples, and
    # its greedy pass@1 is the exact match `tune generate` gives.
    probe = json.loads(tune("-q", "probe", "--config", SOURCE / "configs/grpo/tiny.yaml", "--input", test, "--k", 8,
                            "--max-new-tokens", 8, "--batch-size", 100, "--samples", "runs/probe-samples.jsonl", "--json",
                            cwd=tmp_path, capture=True))
    probed = [json.loads(line) for line in (tmp_path / "runs/probe-samples.jsonl").read_text().splitlines()]
    passes = {}
    for r in probed:
        assert r["pass"] == (r["completion"].strip() == r["prompt"]["reference"])
        if r["kind"] == "sampled":
            passes.setdefault(r["prompt_index"], []).append(r["pass"])
    assert len(passes) == n and all(len(v) == 8 for v in passes.values())
    assert abs(probe["pass@1_greedy"] - before) < 1e-9
    assert abs(probe["pass@1"] - sum(map(sum, passes.values())) / (8 * n)) < 1e-9
    assert abs(probe["pass@8"] - sum(any(v) for v in passes.values()) / n) < 1e-9
    assert abs(probe["all_equal_share"] - sum(len(set(v)) == 1 for v in passes.values()) / n) < 1e-9
    print(f"probe of the start: greedy {probe['pass@1_greedy']:.3f}, sampled {probe['pass@1']:.3f}, "
          f"pass@8 {probe['pass@8']:.3f}, no signal {probe['all_equal_share']:.3f}, verdict {probe['verdict']}")
    tune("grpo", "--config", SOURCE / "configs/grpo/tiny.yaml", cwd=tmp_path)
    after, _ = greedy_accuracy("runs/grpo-tiny/final", test, tmp_path)
    metrics = [json.loads(line) for line in (tmp_path / "runs/grpo-tiny/metrics.jsonl").read_text().splitlines()]
    train_recs = [m for m in metrics if "reward" in m and "loss" in m]
    evals = [m for m in metrics if "eval_pass@1_greedy" in m]
    print(f"greedy exact match on {n} held-out prompts: SFT {before:.3f} -> GRPO {after:.3f}")
    print("reward curve:", [(m["step"], round(m["reward"], 3)) for m in train_recs])
    print("eval curve:", [(m["step"], m["eval_pass@1_greedy"], m.get("eval_pass@1_sampled")) for m in evals])
    assert n >= 200
    # The trainer's own held-out evaluation agrees with the independent count at the end.
    assert abs(evals[-1]["eval_pass@1_greedy"] - after) < 1e-9
    assert train_recs[-1]["reward"] > train_recs[0]["reward"]
    assert after - before >= 0.30
    samples = [json.loads(line) for line in (tmp_path / "runs/grpo-tiny/samples.jsonl").read_text().splitlines()]
    assert samples and {"prompt", "completion", "reward", "advantage"} <= set(samples[0])

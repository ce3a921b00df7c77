"""Learning proof for `tune dpo`: an SFT'd tiny model that is deliberately imperfect (the SFT
preset stopped early) samples the correct sum for some prompts; DPO on addition_pref pairs (the
correct sum preferred to a near miss) must raise the share of correct sampled answers (temperature
1, fixed seed, >= 200 held-out prompts) by >= 30 points. Commands as in the header of
configs/dpo/tiny.yaml and docs/dpo.md: the presets as they are (the built-in tiny model, synth: data)
but for the SFT run's length and the model DPO starts from.
"""
import json

from proof_commands import SOURCE, make_short_sft_model, needs_tune, tune

pytestmark = needs_tune


def sampled_accuracy(model, prompts_file, cwd):
    out = tune("-q", "generate", "--model", model, "--input", prompts_file, "--temperature", 1.0, "--seed", 7,
               "--max-new-tokens", 6, "--batch-size", 100, cwd=cwd, capture=True)
    recs = [json.loads(line) for line in out.splitlines()]
    return sum(r["completion"].strip() == r["answer"] for r in recs) / len(recs), len(recs)


def test_dpo_raises_share_of_correct_sampled_answers(tmp_path):
    make_short_sft_model(tmp_path)  # the 400-step start GRPO's proof shares; also runs/data/addition-test.jsonl: the held-out problems the pairs avoid

    # Held-out prompts with their answers, in the format `tune generate --input` reads.
    prompts = tmp_path / "runs/data/prompts.jsonl"
    with open(prompts, "w") as f:
        for line in (tmp_path / "runs/data/addition-test.jsonl").read_text().splitlines():
            r = json.loads(line)
            f.write(json.dumps({"prompt": r["messages"][0]["content"], "answer": r["answer"]}) + "\n")

    before, n = sampled_accuracy("runs/sft-tiny-short/final", prompts, tmp_path)
    tune("dpo", "--config", SOURCE / "configs/dpo/tiny.yaml", "model.path=runs/sft-tiny-short/final", cwd=tmp_path)
    after, _ = sampled_accuracy("runs/dpo-tiny/final", prompts, tmp_path)
    print(f"sampled exact match on {n} held-out prompts: SFT {before:.3f} -> DPO {after:.3f}")
    metrics = [json.loads(line) for line in (tmp_path / "runs/dpo-tiny/metrics.jsonl").read_text().splitlines()]
    print("last train record:", [m for m in metrics if "rewards/margins" in m][-1])
    assert n >= 200
    assert after - before >= 0.30

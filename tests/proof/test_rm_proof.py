"""Learning proof for `tune rm`: on the shipped synthetic preference task addition_pref (a correct
sum preferred to a near miss that differs in one digit by one), a reward model started from the
SFT'd tiny model (as InstructGPT starts its RM from the SFT model) ranks >= 90% of >= 200 held-out
pairs correctly. The held-out prompts were seen neither by the SFT run nor by the RM run. Checked
twice: the run's own held-out evaluation and `tune score` on the same pairs (the saved model,
reloaded). Commands as in configs/rm/tiny.yaml and docs/rm.md.
"""
import json
import subprocess

from proof_commands import SOURCE, TUNE, make_tiny_model_and_addition_task, needs_tune, tune

pytestmark = needs_tune


def test_reward_model_ranks_held_out_pairs(tmp_path):
    make_tiny_model_and_addition_task(tmp_path)
    tune("sft", "--config", SOURCE / "configs/sft/tiny.yaml", "eval.every=0", "eval.at_start=false", cwd=tmp_path)
    tune("data", "synth", "--task", "addition_pref", "--count", 300, "--seed", 12,
         "--exclude", "runs/data/addition-train.jsonl", "--out", "runs/data/addition-pref-test.jsonl", cwd=tmp_path)
    tune("data", "synth", "--task", "addition_pref", "--count", 9000, "--seed", 11,
         "--exclude", "runs/data/addition-pref-test.jsonl", "--out", "runs/data/addition-pref-train.jsonl", cwd=tmp_path)
    tune("rm", "--config", SOURCE / "configs/rm/tiny.yaml", cwd=tmp_path)

    run = tmp_path / "runs/rm-tiny"
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_accuracy" in line]
    final = evals[-1]
    print("held-out evaluation:", final)
    assert final["eval_pairs"] >= 200
    assert final["eval_accuracy"] >= 0.90

    out = subprocess.run([TUNE, "-q", "score", "--reward-model", run / "final", "--input",
                          tmp_path / "runs/data/addition-pref-test.jsonl"], check=True, capture_output=True, text=True)
    scored = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(scored) == 300
    accuracy = sum(r["chosen_score"] > r["rejected_score"] for r in scored) / len(scored)
    print(f"tune score: pairwise accuracy {accuracy:.3f} on {len(scored)} held-out pairs")
    assert accuracy >= 0.90
    stats = json.loads((run / "final/reward_stats.json").read_text())
    assert stats["std"] > 0

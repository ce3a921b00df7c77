#!/usr/bin/env python3
"""A PPO round's time split: generate / score / reference / critic / train, from `tune ppo`'s own
metrics, on the tiny model and on the ~100M-parameter preset.

    .venv/bin/python scripts/bench_ppo.py --tune build/bin/tune [--rounds 3] [--models tiny,llama-100m] [--threads 2]

Each model is a seeded random one (`tune init-model`); its reward model is `tune rm` run for 2 steps
from the same model (the scores do not matter here, the forward passes do). The run is
configs/ppo/tiny.yaml as it is otherwise: rounds of 64 prompts x 1 completion of at most 8 tokens,
4 PPO epochs x 4 mini-batches of 16 (16 optimizer steps of the policy and of the critic per round),
critic from the reward model, adaptive KL, evaluation off. The first round is left out (warm-up,
and the critic-only steps of the preset are turned off so every round is alike); the table shows
the mean of the others. Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUND_KEYS = ["time/generate", "time/score", "time/reference", "time/critic"]  # once per round
STEP_KEYS = ["time/train", "time/critic_train"]  # once per optimizer step: summed over the round
STEPS_PER_ROUND = 16


def run(tune, *args, cwd, env):
    subprocess.run([tune, *map(str, args)], check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def bench(tune, model, rounds, threads, work):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TUNE_CACHE_DIR": str(work / "cache")}
    run(tune, "init-model", "--preset", model, "--out", "model", cwd=work, env=env)
    run(tune, "data", "synth", "--task", "reverse_pref", "--digits", 4, "--count", 64, "--seed", 11, "--out", "pref.jsonl",
        cwd=work, env=env)
    run(tune, "rm", "--config", ROOT / "configs/rm/tiny.yaml", "model.path=model", "data.datasets[0].path=pref.jsonl",
        "data.eval_path=", "data.eval_fraction=0", "--output-dir", "rm", "--max-steps", 2, "train.batch_size=8",
        "eval.every=0", "rm.calibration_pairs=16", f"train.threads={threads}", cwd=work, env=env)
    run(tune, "data", "synth", "--task", "reverse", "--digits", 4, "--format", "prompt", "--count", 64 * rounds,
        "--seed", 23, "--out", "prompts.jsonl", cwd=work, env=env)
    t0 = time.time()
    run(tune, "ppo", "--config", ROOT / "configs/ppo/tiny.yaml", "model.path=model", "reward.terms[0].path=rm/final",
        "data.datasets[0].path=prompts.jsonl", "data.eval_path=", "eval.every=0", "eval.at_start=false",
        "critic.warmup_steps=0", "train.log_every=1", f"train.threads={threads}", "train.save_every=0",
        "--max-steps", STEPS_PER_ROUND * rounds, "--output-dir", "ppo", cwd=work, env=env)
    wall = time.time() - t0
    steps = [json.loads(line) for line in (work / "ppo/metrics.jsonl").read_text().splitlines() if '"time/train"' in line]
    assert len(steps) == STEPS_PER_ROUND * rounds, len(steps)
    per_round = []
    for r in range(1, rounds):  # round 0 is the warm-up
        rows = steps[r * STEPS_PER_ROUND:(r + 1) * STEPS_PER_ROUND]
        split = {k: rows[0][k] for k in ROUND_KEYS}
        split.update({k: sum(x[k] for x in rows) for k in STEP_KEYS})
        per_round.append(split)
    mean = {k: sum(p[k] for p in per_round) / len(per_round) for k in ROUND_KEYS + STEP_KEYS}
    params = json.loads((work / "model/config.json").read_text())
    return mean, wall, params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tune", default=str(ROOT / "build/bin/tune"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="tiny,llama-100m")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    assert a.rounds >= 2, "the first round is a warm-up: --rounds 2 or more"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; threads {a.threads}; {a.rounds - 1} measured rounds "
          f"of 64 prompts x 1, 8 new tokens, {STEPS_PER_ROUND} policy + {STEPS_PER_ROUND} critic steps each\n")
    print("| model | generate | score (RM) | reference + old log-probs | critic (old values) | policy train | "
          "critic train | round | wall (all rounds) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in a.models.split(","):
        with tempfile.TemporaryDirectory() as d:
            mean, wall, cfg = bench(a.tune, model, a.rounds, a.threads, Path(d))
        total = sum(mean.values())
        cells = " | ".join(f"{mean[k]:.2f} s ({100 * mean[k] / total:.0f}%)" for k in ROUND_KEYS + STEP_KEYS)
        size = f"{model} (hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers)"
        print(f"| {size} | {cells} | {total:.2f} s | {wall:.1f} s |", flush=True)


if __name__ == "__main__":
    main()

"""`tune probe` and `tune sample` as users run them: the probe's figures equal an independent count
over the samples it writes, its filtered prompts are the ones solved sometimes, an RL config works as
its --config, and `tune sample` keeps the best sample per prompt as SFT records that `tune sft` reads."""
import json
import math
import re
from collections import defaultdict

import pytest

from conftest import ROOT, read_jsonl, run_tune

# The random tiny model never answers a sum; a format rule it meets about half the time gives
# prompts solved always, never and sometimes.
HAS_E = ["reward.terms=[{kind: format, name: has_e, pattern: e}]"]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    run_tune("data", "synth", "--task", "addition", "--format", "prompt", "--count", "30", "--seed", "3",
             "--out", d / "prompts.jsonl")
    return d / "prompts.jsonl"


def unbiased_pass_at(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_probe_figures_equal_an_independent_count(tmp_path, tiny_model, prompts):
    samples, filtered = tmp_path / "samples.jsonl", tmp_path / "filtered.jsonl"
    p = run_tune("-q", "probe", "--model", tiny_model, "--input", prompts, "--k", "6", "--max-new-tokens", "6",
                 "--batch-size", "7", "--samples", samples, "--write-filtered", filtered, "--json", *HAS_E)
    report = json.loads(p.stdout)
    recs = read_jsonl(samples)
    greedy = [r for r in recs if r["kind"] == "greedy"]
    sampled = defaultdict(list)
    for r in recs:
        if r["kind"] == "sampled":
            sampled[r["prompt_index"]].append(r)
        # The pass is the reward term's verdict on the completion text, recounted here.
        assert r["pass"] == ("e" in r["completion"])
    assert len(greedy) == 30 and sorted(sampled) == list(range(30)) and all(len(v) == 6 for v in sampled.values())
    assert report["prompts"] == 30 and report["k"] == 6
    assert report["pass@1_greedy"] == pytest.approx(sum(r["pass"] for r in greedy) / 30)
    counts = {i: sum(r["pass"] for r in v) for i, v in sampled.items()}
    for k in (1, 2, 4, 6):
        assert report[f"pass@{k}"] == pytest.approx(sum(unbiased_pass_at(6, c, k) for c in counts.values()) / 30)
    assert report["pass@1"] == pytest.approx(sum(counts.values()) / 180)
    assert report["reward_mean"] == pytest.approx(sum(r["reward"] for v in sampled.values() for r in v) / 180)
    assert report["all_equal_share"] == pytest.approx(sum(c in (0, 6) for c in counts.values()) / 30)
    assert report["always_share"] == pytest.approx(sum(c == 6 for c in counts.values()) / 30)
    sometimes = [i for i, c in counts.items() if 0 < c < 6]
    assert 0 < len(sometimes) < 30, "the fixture should give prompts solved sometimes"
    kept = read_jsonl(filtered)
    source = read_jsonl(prompts)
    assert kept == [source[i] for i in sorted(sometimes)]  # the input's records, in order
    assert report["verdict"] in {"ready", "weak", "too_hard", "too_easy", "little_signal"} and report["advice"]
    # The filtered file is itself a prompt file.
    again = json.loads(run_tune("-q", "probe", "--model", tiny_model, "--input", filtered, "--k", "6",
                                "--max-new-tokens", "6", "--json", *HAS_E).stdout)
    assert again["prompts"] == len(sometimes)


def test_probe_reads_an_rl_config(tmp_path, tiny_model, prompts):
    p = run_tune("-q", "probe", "--config", ROOT / "configs/grpo/tiny.yaml", f"model.path={tiny_model}",
                 "--input", prompts, "--k", "2", "--max-prompts", "5", "--json")
    report = json.loads(p.stdout)
    # The preset's exact-answer reward: the random model solves nothing.
    assert report["prompts"] == 5 and report["pass@2"] == 0.0 and report["verdict"] == "too_hard"
    p = run_tune("probe", "--model", tiny_model, "--input", prompts, "--reward", "nope", check=False)
    assert p.returncode == 2 and "reward.terms[0].kind" in p.stderr


def test_sample_keeps_the_best_completion_as_sft_records(tmp_path, tiny_model, prompts):
    out = tmp_path / "sft.jsonl"
    p = run_tune("-q", "sample", "--model", tiny_model, "--input", prompts, "--n", "4", "--max-new-tokens", "6",
                 "--min-reward", "1", "--out", out, "--json", *HAS_E)
    report = json.loads(p.stdout)
    recs = read_jsonl(out)
    assert report["prompts"] == 30 and report["samples"] == 120 and report["kept"] == len(recs) > 0
    source = {r["prompt"] for r in read_jsonl(prompts)}
    for r in recs:
        user, answer = r["messages"][-2], r["messages"][-1]
        assert user["role"] == "user" and user["content"] in source
        assert answer["role"] == "assistant" and "e" in answer["content"] and r["reward"] >= 1
    # SFT reads them as chat records.
    run_tune("sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model.path={tiny_model}",
             f"data.datasets[0].path={out}", "data.eval_path=", "--output-dir", tmp_path / "sft", "--dry-run")

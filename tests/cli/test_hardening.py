"""Shared-machinery defects a new user met, each pinned: data with nothing to learn, a fresh run
into an earlier run's directory, evaluation answers cut by the generation limit."""
import json
import time

from conftest import ROOT, read_jsonl, run_tune

SFT_FAST = ["train.threads=1", "train.batch_size=8", "train.log_every=1", "eval.at_start=false",
            "optim.warmup_steps=0"]


def test_sft_on_rl_prompt_records_is_refused_before_the_first_step(tmp_path, tiny_model):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a}+{a}=", "answer": str(2 * a)}) + "\n" for a in range(20)))
    started = time.monotonic()
    p = run_tune("sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model.path={tiny_model}",
                 f"data.datasets[0].path={data}", "data.eval_path=", "--output-dir", tmp_path / "run",
                 *SFT_FAST, check=False, timeout=120)
    assert time.monotonic() - started < 60
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()[-1]
    assert f"{data}:1" in err                    # the file and line
    assert "'prompt'" in err and "RL prompts" in err  # the format it detected
    assert "completion" in err and "assistant" in err  # the fields it expected
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_fresh_run_refuses_an_earlier_runs_directory(tmp_path, tiny_model, addition_data):
    run = tmp_path / "run"
    args = ["sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model.path={tiny_model}",
            f"data.datasets[0].path={addition_data / 'train.jsonl'}", f"data.eval_path={addition_data / 'test.jsonl'}",
            "eval.max_samples=8", "--output-dir", run, "--max-steps", "3", *SFT_FAST]
    run_tune(*args)
    first = read_jsonl(run / "metrics.jsonl")
    p = run_tune(*args, check=False)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()[-1]
    assert str(run) in err and "--resume" in err and "--overwrite" in err
    assert read_jsonl(run / "metrics.jsonl") == first  # nothing touched
    run_tune(*args, "--overwrite")
    again = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in again if "loss" in r] == [1, 2, 3]  # replaced, not appended
    manifest = json.loads((run / "manifest.json").read_text())
    assert "resumed" not in manifest


def test_eval_generation_limit_follows_the_references(tmp_path, tiny_model):
    """Answers of 12 digits need more than the old fixed limit of 8 tokens: the default limit is
    derived from the longest reference, and the share of answers cut by the limit is logged."""
    data = tmp_path / "long.jsonl"
    lines = []
    for i in range(40):
        digits = "".join(str((i * 7 + k * 3) % 10) for k in range(12))
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"copy {digits}"},
                                              {"role": "assistant", "content": digits}]}))
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    p = run_tune("sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model.path={tiny_model}",
                 f"data.datasets[0].path={data}", "data.eval_path=", "data.eval_fraction=0.25",
                 "--output-dir", run, "--max-steps", "2", *SFT_FAST, "eval.at_start=true")
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "eval_exact_match" in r]
    assert evals[0]["step"] == 0 and all("eval_hit_limit" in r for r in evals)
    # The random model at step 0 emits no EOS on these prompts: its answers run to the limit, and the
    # user is told.
    assert evals[0]["eval_hit_limit"] == 1.0
    assert "reached the generation limit" in p.stderr
    # The limit is derived from the references: 12 digits (one token each in the tiny BPE) + EOS + 4.
    limit = int(p.stderr.split("reached the generation limit of ")[1].split()[0])
    assert limit == 17

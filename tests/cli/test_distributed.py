"""Data parallelism on c10d's Gloo backend (CPU): 2 and 4 processes give the same losses and final
weights as 1 process with the same global batch (sft full, sft LoRA with gradient checkpointing,
dpo, rm), and ZeRO-1 the same as plain data parallelism; grpo and ppo on two ranks report whole
rounds and resume exactly; torchrun --no-python launches the binary; a rank that dies makes the
others exit with an error within the timeout, the last checkpoint stays intact and the run resumes
from it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, read_jsonl, tune_bin

TIMEOUT_S = 60  # TUNE_DIST_TIMEOUT_S of the runs: a lost rank must end the others well within it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(rank, world, port, **extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", TUNE_DIST_TIMEOUT_S=str(TIMEOUT_S))
    if world > 1:
        env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
    env.update(extra)
    return env


def start(world, args, cwd, **extra):
    port = free_port()
    return [subprocess.Popen([tune_bin(), *map(str, args)], cwd=cwd, env=env_for(r, world, port, **extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]


def wait_all(procs, timeout=600):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def launch(world, args, cwd):
    results = wait_all(start(world, args, cwd))
    for rank, (rc, stdout, stderr) in enumerate(results):
        assert rc == 0, f"rank {rank} of {world} exited {rc}\nstderr:\n{stderr[-4000:]}"
    return results


def train_records(run):
    return [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r and "eval_loss" not in r]


def expect_same_run(one, many, what, rel=1e-5):
    """Losses, gradient norms and eval figures of every logged step, and the final weights."""
    a, b = train_records(one), train_records(many)
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) >= 10, what
    for ra, rb in zip(a, b):
        for key in ("loss", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=rel, abs=1e-7), (what, ra["step"], key, ra[key], rb[key])
    evals_a = [r for r in read_jsonl(one / "metrics.jsonl") if "eval_loss" in r]
    evals_b = [r for r in read_jsonl(many / "metrics.jsonl") if "eval_loss" in r]
    assert len(evals_a) == len(evals_b) >= 1, what
    for ea, eb in zip(evals_a, evals_b):
        for key in ea:
            if isinstance(ea[key], float):
                assert eb[key] == pytest.approx(ea[key], rel=rel, abs=1e-7), (what, ea["step"], key)
    final_a, final_b = one / "final", many / "final"
    files = sorted(p.name for p in final_a.glob("*.safetensors"))
    assert files and files == sorted(p.name for p in final_b.glob("*.safetensors")), what
    worst, worst_element = 0.0, 0.0
    for name in files:
        ta, tb = load_file(final_a / name), load_file(final_b / name)
        assert ta.keys() == tb.keys()
        for k in ta:
            # Per tensor: the norm of the difference relative to the tensor's norm.
            worst = max(worst, ((ta[k] - tb[k]).norm() / ta[k].norm().clamp_min(1e-12)).item())
            worst_element = max(worst_element, ((ta[k] - tb[k]).abs().max() / ta[k].abs().max().clamp_min(1e-12)).item())
    print(f"{what}: {len(a)} steps, final weights' relative difference {worst:.2e} (largest element {worst_element:.2e})")
    assert worst <= 1e-5, (what, worst)
    # What communication cost, per logged step: every gradient byte once, its buckets sent from backward.
    dist = [r for r in b if "dist/world_size" in r]
    assert len(dist) == len(b) and dist[-1]["dist/world_size"] > 1
    assert dist[-1]["dist/grad_buckets"] >= 1 and dist[-1]["dist/buckets_in_backward"] == dist[-1]["dist/grad_buckets"]


SFT = ["sft", "--config", ROOT / "configs/sft/tiny.yaml", "train.max_steps=12", "train.log_every=1",
       "train.save_every=6", "optim.warmup_steps=2", "eval.every=6", "eval.at_start=false", "eval.max_samples=30",
       "eval.batch_size=16", "train.threads=1", "data.datasets[0].path=synth:addition?count=400&seed=1"]


@pytest.fixture(scope="module")
def sft_single(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft1")
    launch(1, [*SFT, "train.batch_size=8", "-o", d / "run"], d)
    return d / "run"


@pytest.mark.parametrize("world", [2, 4])
def test_sft_full_matches_one_process(sft_single, tmp_path, world):
    launch(world, [*SFT, f"train.batch_size={8 // world}", "-o", tmp_path / "run"], tmp_path)
    expect_same_run(sft_single, tmp_path / "run", f"sft full, {world} ranks")
    # Rank 0 alone wrote: one metrics file, every step once.
    steps = [r["step"] for r in train_records(tmp_path / "run")]
    assert steps == sorted(set(steps))


def test_sft_lora_with_checkpointing_and_accumulation_matches_one_process(tmp_path):
    lora = ["sft", "--config", ROOT / "configs/sft/tiny.yaml", "method=lora", "lora.r=4", "optim.lr=1e-2",
            "model.gradient_checkpointing=true", *SFT[3:]]
    launch(1, [*lora, "train.batch_size=4", "train.grad_accum=2", "-o", tmp_path / "one"], tmp_path)
    launch(2, [*lora, "train.batch_size=2", "train.grad_accum=2", "-o", tmp_path / "two"], tmp_path)
    expect_same_run(tmp_path / "one", tmp_path / "two", "sft lora + checkpointing + accumulation, 2 ranks")
    assert (tmp_path / "two/final/adapter_config.json").exists()


def test_dpo_matches_one_process(tmp_path):
    dpo = ["dpo", "--config", ROOT / "configs/dpo/tiny.yaml", "model.path=builtin:tiny", "model.made_by=",
           "data.datasets[0].path=synth:addition_pref?count=300&seed=21", "train.max_steps=12", "train.log_every=1",
           "optim.warmup_steps=2", "eval.every=6", "eval.max_pairs=30", "eval.samples=0", "train.threads=1"]
    launch(1, [*dpo, "train.batch_size=8", "-o", tmp_path / "one"], tmp_path)
    launch(2, [*dpo, "train.batch_size=4", "-o", tmp_path / "two"], tmp_path)
    expect_same_run(tmp_path / "one", tmp_path / "two", "dpo, 2 ranks")


def test_rm_matches_one_process(tmp_path):
    rm = ["rm", "--config", ROOT / "configs/rm/tiny.yaml", "train.max_steps=12", "train.log_every=1",
          "optim.warmup_steps=2", "eval.every=6", "eval.max_pairs=30", "train.threads=1",
          "data.datasets[0].path=synth:reverse_pref?digits=4&count=300&seed=11"]
    launch(1, [*rm, "train.batch_size=8", "-o", tmp_path / "one"], tmp_path)
    launch(2, [*rm, "train.batch_size=4", "-o", tmp_path / "two"], tmp_path)
    expect_same_run(tmp_path / "one", tmp_path / "two", "rm, 2 ranks")
    stats = [json.loads((tmp_path / r / "final/reward_stats.json").read_text()) for r in ("one", "two")]
    assert stats[1]["mean"] == pytest.approx(stats[0]["mean"], rel=1e-4, abs=1e-6)


def test_zero_1_shards_the_optimizer_state_and_changes_nothing_else(tmp_path):
    """ZeRO-1 on 2 ranks: the same losses and final weights as without it, half the AdamW state per
    rank, and a resume from its checkpoint (which holds every rank's share) repeats the run."""
    args = [*SFT, "train.batch_size=4", "train.save_every=6"]
    launch(2, [*args, "-o", tmp_path / "plain"], tmp_path)
    launch(2, [*args, "train.zero_stage=1", "-o", tmp_path / "zero"], tmp_path)
    expect_same_run(tmp_path / "plain", tmp_path / "zero", "sft full, 2 ranks, ZeRO-1", rel=1e-6)
    plain, zero = train_records(tmp_path / "plain"), train_records(tmp_path / "zero")
    share = zero[-1]["dist/optimizer_state_bytes"] / plain[-1]["dist/optimizer_state_bytes"]
    print(f"ZeRO-1: rank 0 holds {share:.1%} of the AdamW state")
    assert 0.4 <= share <= 0.6
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "zero", again)
    for d in again.glob("checkpoint-12*"):
        shutil.rmtree(d)
    launch(2, [*args, "train.zero_stage=1", "-o", again, "--resume", again / "checkpoint-6"], tmp_path)
    resumed = {r["step"]: r for r in train_records(again)}
    for r in zero[6:]:
        assert resumed[r["step"]]["loss"] == pytest.approx(r["loss"], rel=1e-9), r["step"]
        assert resumed[r["step"]]["grad_norm"] == pytest.approx(r["grad_norm"], rel=1e-9), r["step"]


def test_torchrun_no_python_launches_tune(sft_single, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists(), f"torchrun not found next to {sys.executable}"
    cmd = [torchrun, "--nproc-per-node", "2", "--master-port", str(free_port()), "--no-python", tune_bin(),
           *map(str, SFT), "train.batch_size=4", "-o", tmp_path / "run"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env_for(0, 1, 0), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rank 0 of 2 (torchrun)" in proc.stderr + proc.stdout
    expect_same_run(sft_single, tmp_path / "run", "sft full under torchrun, 2 ranks")


def test_a_lost_rank_ends_the_others_and_the_checkpoint_survives(tmp_path):
    args = [*SFT, "train.max_steps=400", "train.save_every=5", "train.batch_size=4", "-o", tmp_path / "run"]
    procs = start(2, args, tmp_path)
    def saved():  # complete checkpoints: renamed into place (checkpoint-<step>, no .tmp suffix)
        return [d for d in (tmp_path / "run").glob("checkpoint-*") if d.name.split("-")[1].isdigit()]

    deadline = time.time() + 300
    while time.time() < deadline and not saved():
        assert all(p.poll() is None for p in procs), wait_all(procs)
        time.sleep(0.2)
    assert saved(), "no checkpoint was written"
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    (rc0, _, err0), _ = wait_all(procs, timeout=TIMEOUT_S + 60)
    took = time.time() - killed_at
    print(f"rank 0 exited {rc0} {took:.1f} s after rank 1 was killed: {err0.strip().splitlines()[-1]}")
    assert rc0 != 0 and took <= TIMEOUT_S + 10
    assert err0.strip().splitlines()[-1].startswith("tune: error:")
    for d in saved():  # every checkpoint on disk is whole
        assert {"parameters.pt", "optimizer.pt", "rng.pt", "state.json"} <= {p.name for p in d.iterdir()}, d
    # The run resumes from the latest on 2 ranks.
    launch(2, [*args[:-2], "train.max_steps=20", "--resume", "-o", tmp_path / "run"], tmp_path)
    records = train_records(tmp_path / "run")
    assert records[-1]["step"] == 20


def test_different_world_size_resume_warns(tmp_path):
    launch(2, [*SFT, "train.batch_size=4", "train.max_steps=6", "-o", tmp_path / "run"], tmp_path)
    (rc, _, err), = launch(1, [*SFT, "train.batch_size=8", "train.max_steps=12", "--resume", "-o", tmp_path / "run"],
                           tmp_path)
    assert "not bit-exact" in err


def ppo_config(tmp_path, prompts):
    """configs/ppo/tiny.yaml on the random model with a rule reward it meets about half the time, a
    critic from the policy, rounds of 8 prompts and mini-batches of 4 (2 per rank on 2 ranks)."""
    import yaml
    config = yaml.safe_load((ROOT / "configs/ppo/tiny.yaml").read_text())
    config["model"] = {"path": "builtin:tiny"}
    config["data"] = {"datasets": [{"path": str(prompts / "train.jsonl")}], "eval_path": str(prompts / "test.jsonl")}
    config["reward"] = {"terms": [{"name": "has_e", "kind": "format", "pattern": "e"}]}
    config["critic"] = {"init": "policy", "lr": 3.0e-4, "warmup_steps": 2}
    config["ppo"].update(prompts_per_round=8, mini_batch_size=4, ppo_epochs=2)
    config["train"].update(batch_size=2, threads=1, log_every=1, save_every=4)
    config["eval"] = {"every": 4, "max_prompts": 24, "batch_size": 24, "pass_term": "has_e"}
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_ppo_on_two_ranks_reports_the_whole_round_and_resumes_exactly(grpo_prompts, tmp_path):
    config = ppo_config(tmp_path, grpo_prompts)
    launch(1, ["ppo", "--config", config, "--max-steps", "8", "-o", tmp_path / "one"], tmp_path)
    launch(2, ["ppo", "--config", config, "--max-steps", "8", "-o", tmp_path / "two"], tmp_path)
    one, two = read_jsonl(tmp_path / "one/metrics.jsonl"), read_jsonl(tmp_path / "two/metrics.jsonl")
    e1, e2 = [r for r in one if "eval_pass@1_greedy" in r], [r for r in two if "eval_pass@1_greedy" in r]
    assert e1[0]["step"] == e2[0]["step"] == 0 and e2[0]["eval_pass@1_greedy"] == e1[0]["eval_pass@1_greedy"]
    steps = [r for r in two if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    for r in steps:
        assert r["rows_trained"] == 8 and 0 <= r["reward"] <= 1, r  # both ranks' 4 completions
    assert steps[0]["policy_frozen"] and not steps[-1]["policy_frozen"]
    # The KL controller saw the same global figure on both ranks: its coefficient is logged by rank 0
    # and restored from the checkpoint; a resume from step 4 repeats steps 5-8 exactly.
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "two", again)
    for d in again.glob("checkpoint-8*"):
        shutil.rmtree(d)
    launch(2, ["ppo", "--config", config, "--max-steps", "8", "-o", again, "--resume", again / "checkpoint-4"], tmp_path)
    resumed = {r["step"]: r for r in read_jsonl(again / "metrics.jsonl") if "loss" in r}
    for r in steps[4:]:
        for key in ("loss", "reward", "kl_coef", "loss/value"):
            assert resumed[r["step"]][key] == pytest.approx(r[key], rel=1e-6, abs=1e-9), (r["step"], key)
    assert (tmp_path / "two/critic").is_dir()


@pytest.fixture(scope="module")
def grpo_prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpo-prompts")
    for name, count, seed in (("train", 200, 3), ("test", 24, 4)):
        subprocess.run([tune_bin(), "data", "synth", "--task", "addition", "--format", "prompt", "--count", str(count),
                        "--seed", str(seed), "--out", d / f"{name}.jsonl"], check=True, capture_output=True)
    return d


def grpo_args(prompts, out, *extra):
    # The random model never answers a sum; a format rule it meets about half the time gives signal.
    return ["grpo", "--config", ROOT / "configs/grpo/tiny.yaml", "model.path=builtin:tiny", "model.made_by=",
            f"data.datasets[0].path={prompts / 'train.jsonl'}", f"data.eval_path={prompts / 'test.jsonl'}",
            "reward.terms[0]={name: has_e, kind: format, pattern: e}", "eval.pass_term=has_e",
            "train.threads=1", "train.log_every=1", "grpo.prompts_per_round=4", "grpo.group_size=4", "grpo.mu=2",
            "grpo.mini_batches=1", "train.batch_size=2", "eval.max_prompts=24", "eval.every=4", "train.save_every=2",
            "-o", out, *extra]


def test_grpo_on_two_ranks_reports_the_whole_round_and_resumes_exactly(grpo_prompts, tmp_path):
    launch(1, grpo_args(grpo_prompts, tmp_path / "one", "--max-steps", "4"), tmp_path)
    # Two ranks with ZeRO-1 too (the optimizer state sharded, gathered into the checkpoint).
    launch(2, grpo_args(grpo_prompts, tmp_path / "two", "--max-steps", "4", "train.zero_stage=1"), tmp_path)
    one, two = read_jsonl(tmp_path / "one/metrics.jsonl"), read_jsonl(tmp_path / "two/metrics.jsonl")
    # Greedy evaluation draws nothing: sharded over two ranks it is the one-process figure exactly.
    e1, e2 = [r for r in one if "eval_pass@1_greedy" in r], [r for r in two if "eval_pass@1_greedy" in r]
    assert e1[0]["step"] == e2[0]["step"] == 0 and e2[0]["eval_prompts"] == 24
    assert e2[0]["eval_pass@1_greedy"] == e1[0]["eval_pass@1_greedy"]
    # Each step's record is the whole round's: 4 prompts x 4 completions over both ranks.
    steps = [r for r in two if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert r["groups_sampled"] >= 4 and r["rows_trained"] == 16, r
        assert 0 <= r["reward"] <= 1
    # Resume from the step-2 checkpoint on two ranks: every rank's sampler stream was saved, so steps
    # 3 and 4 are those of the uninterrupted run.
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "two", again)
    for d in again.glob("checkpoint-4*"):
        shutil.rmtree(d)
    launch(2, [*grpo_args(grpo_prompts, again, "--max-steps", "4", "train.zero_stage=1"), "--resume",
               again / "checkpoint-2"], tmp_path)
    resumed = {r["step"]: r for r in read_jsonl(again / "metrics.jsonl") if "loss" in r}
    for r in steps[2:]:
        for key in ("loss", "reward", "grad_norm", "groups_sampled"):
            assert resumed[r["step"]][key] == pytest.approx(r[key], rel=1e-6, abs=1e-9), (r["step"], key)

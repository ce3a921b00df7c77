"""Proof that tune sft learns: the random tiny model, fully fine-tuned on CPU, goes from ~0% to
>= 90% exact match on 200 held-out addition problems; then a LoRA adapter on top of it learns a
second task (reversing digits) to >= 90% while the base model's weights stay byte-identical."""
import hashlib
import json

import pytest

import proof_commands  # noqa: F401  (pins the CPU kernels the proofs were tuned on)
from conftest import ROOT, read_jsonl, run_tune


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exact_match(model_dir, test_file, tmp_path, adapter=None):
    prompts = tmp_path / "prompts.jsonl"
    recs = read_jsonl(test_file)[:200]
    prompts.write_text("".join(json.dumps({"messages": r["messages"][:1], "answer": r["answer"]}) + "\n" for r in recs))
    args = ["generate", "--model", model_dir, "--input", prompts, "--max-new-tokens", "8", "--batch-size", "100"]
    if adapter:
        args += ["--adapter", adapter]
    out = [json.loads(l) for l in run_tune(*args).stdout.splitlines()]
    return sum(o["completion"].strip() == o["answer"] for o in out) / len(out)


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_model, addition_data):
    out = tmp_path_factory.mktemp("sft") / "run"
    run_tune("sft", "--config", ROOT / "configs/sft/tiny.yaml", f"model.path={tiny_model}",
             f"data.datasets[0].path={addition_data / 'train.jsonl'}",
             f"data.eval_path={addition_data / 'test.jsonl'}", "--output-dir", out)
    return out


def test_full_sft_learns_addition(sft_run, tiny_model, addition_data, tmp_path):
    evals = [r for r in read_jsonl(sft_run / "metrics.jsonl") if "eval_exact_match" in r]
    first, last = evals[0], evals[-1]
    print("eval curve:", [(r["step"], r["eval_exact_match"], round(r["eval_loss"], 3)) for r in evals])
    assert first["step"] == 0 and first["eval_exact_match"] <= 0.05
    assert last["eval_count"] >= 200
    assert last["eval_exact_match"] >= 0.90
    # The exported model answers as well through `tune generate`.
    assert exact_match(sft_run / "final", addition_data / "test.jsonl", tmp_path) >= 0.90
    assert exact_match(tiny_model, addition_data / "test.jsonl", tmp_path) <= 0.05


def test_lora_learns_second_task_base_unchanged(sft_run, addition_data, tmp_path_factory, tmp_path):
    d = tmp_path_factory.mktemp("reverse")
    run_tune("data", "synth", "--task", "reverse", "--digits", "4", "--count", "4000", "--seed", "3",
             "--out", d / "train.jsonl")
    run_tune("data", "synth", "--task", "reverse", "--digits", "4", "--count", "300", "--seed", "4",
             "--exclude", d / "train.jsonl", "--out", d / "test.jsonl")
    base = sft_run / "final"
    before = sha256(base / "model.safetensors")
    out = d / "run"
    run_tune("sft", "--config", ROOT / "configs/sft/tiny-lora.yaml", f"model.path={base}",
             f"data.datasets[0].path={d / 'train.jsonl'}", f"data.eval_path={d / 'test.jsonl'}",
             "--output-dir", out)
    evals = [r for r in read_jsonl(out / "metrics.jsonl") if "eval_exact_match" in r]
    print("lora eval curve:", [(r["step"], r["eval_exact_match"]) for r in evals])
    assert evals[-1]["eval_exact_match"] >= 0.90
    assert (out / "final" / "adapter_config.json").exists()
    assert sha256(base / "model.safetensors") == before
    assert exact_match(base, d / "test.jsonl", tmp_path, adapter=out / "final") >= 0.90
    # Without the adapter the base still does addition, not reversal.
    assert exact_match(base, addition_data / "test.jsonl", tmp_path) >= 0.90

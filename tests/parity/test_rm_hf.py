"""A reward model saved by `tune rm` loads in transformers / PEFT and gives the same scores.

Full layout: AutoModelForSequenceClassification.from_pretrained(final). LoRA layout: the base
model as a sequence classifier (num_labels=1, pad_token_id from reward_stats.json) +
PeftModel.from_pretrained(base, final), which restores the LoRA weights and the score head
(modules_to_save). Scores are compared with `tune score` on the same token ids (--with-ids),
batched with right padding so the last-non-padding-token pooling is exercised.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

TUNE = os.environ.get("TUNE_BIN")
pytestmark = pytest.mark.skipif(not TUNE, reason="TUNE_BIN not set (run through ctest)")
TOL = 1e-4


def run(*args):
    subprocess.run([TUNE, "-q", *map(str, args)], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("rm")
    run("init-model", "--preset", "tiny", "--out", d / "base", "--seed", 3)
    run("data", "synth", "--task", "addition_pref", "--count", 96, "--seed", 5, "--out", d / "pref.jsonl")
    recs = [json.loads(line) for line in (d / "pref.jsonl").read_text().splitlines()[:12]]
    with open(d / "score.jsonl", "w") as f:
        for i, r in enumerate(recs):  # answers of different lengths -> padding inside a batch
            f.write(json.dumps({"prompt": r["prompt"], "response": r["chosen"] + (" extra words" if i % 3 == 0 else "")}) + "\n")
    return d


def train(work, method):
    out = work / f"rm-{method}"
    run("rm", "-o", out, "--max-steps", 6, f"model.path={work / 'base'}", f"data.datasets=[{{path: {work / 'pref.jsonl'}}}]",
        f"method={method}", "optim.lr=3e-3", "train.batch_size=8", "train.log_every=2", "data.max_seq_len=64",
        "lora.r=4", "lora.alpha=8")
    return out / "final"


def tune_scores(work, final):
    out = subprocess.run([TUNE, "-q", "score", "--reward-model", final, "--input", work / "score.jsonl", "--with-ids",
                          "--batch-size", "5"], check=True, capture_output=True, text=True)
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    return [r["input_ids"][0] for r in recs], [r["score"] for r in recs]


def hf_scores(model, ids, pad):
    model.eval()
    T = max(map(len, ids))
    batch = torch.full((len(ids), T), pad, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for i, seq in enumerate(ids):
        batch[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    with torch.no_grad():
        return model(input_ids=batch, attention_mask=mask).logits[:, 0].tolist()


def test_full_reward_model_loads_in_transformers(work):
    final = train(work, "full")
    cfg = json.loads((final / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"]
    assert cfg["id2label"] == {"0": "LABEL_0"} and cfg["pad_token_id"] is not None
    from safetensors import safe_open
    with safe_open(final / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "score.weight" in keys and not any(k.startswith("lm_head") for k in keys)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(final, dtype=torch.float32)
    assert model.config.num_labels == 1
    ids, ours = tune_scores(work, final)
    theirs = hf_scores(model, ids, cfg["pad_token_id"])
    assert ours == pytest.approx(theirs, abs=TOL)
    assert max(ours) - min(ours) > 1e-3  # not a constant head
    stats = json.loads((final / "reward_stats.json").read_text())
    assert stats["std"] > 0 and stats["count"] > 0


def test_lora_reward_model_loads_in_peft(work):
    final = train(work, "lora")
    acfg = json.loads((final / "adapter_config.json").read_text())
    assert acfg["task_type"] == "SEQ_CLS" and acfg["modules_to_save"] == ["score"]
    stats = json.loads((final / "reward_stats.json").read_text())
    base = transformers.AutoModelForSequenceClassification.from_pretrained(
        work / "base", num_labels=1, pad_token_id=stats["pad_token_id"], dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, final)
    ids, ours = tune_scores(work, final)
    theirs = hf_scores(model, ids, stats["pad_token_id"])
    assert ours == pytest.approx(theirs, abs=TOL)
    assert max(ours) - min(ours) > 1e-3

"""LoRA parity: tune's PEFT adapter files and merge against the `peft` library itself.

Each test builds a random tiny base model with transformers, runs tune's LoRA code through the
tune_lora_driver executable, and compares logits in float32 with what peft/transformers compute.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from safetensors import safe_open  # noqa: E402

DRIVER = os.environ.get("TUNE_LORA_DRIVER")
pytestmark = pytest.mark.skipif(not DRIVER, reason="TUNE_LORA_DRIVER not set (run through ctest)")

TOL = 1e-4
IDS = [[1, 17, 42, 5, 88, 23, 9, 64, 3, 30], [7, 7, 90, 12, 0, 55, 31, 2, 76, 44]]


def make_base(kind, path):
    torch.manual_seed(0)
    common = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    if kind == "llama":
        cfg = transformers.LlamaConfig(rms_norm_eps=1e-5, tie_word_embeddings=False, **common)
    else:  # qwen2: q/k/v biases and a tied lm_head
        cfg = transformers.Qwen2Config(rms_norm_eps=1e-6, tie_word_embeddings=True, **common)
    model = transformers.AutoModelForCausalLM.from_config(cfg).float()
    with torch.no_grad():  # non-zero biases so they take part in the comparison
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.02)
    model.save_pretrained(path, safe_serialization=True)
    (Path(path) / "tokenizer_config.json").write_text('{"model_max_length": 64}')
    return path


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def base(request, tmp_path_factory):
    return make_base(request.param, tmp_path_factory.mktemp(request.param))


def driver(*args, expect_ok=True):
    proc = subprocess.run([DRIVER, *map(str, args)], capture_output=True, text=True, timeout=300)
    if expect_ok:
        assert proc.returncode == 0, f"driver {args[0]} failed: {proc.stderr}"
    return proc


def tune_logits(tmp, model_dir, adapter_dir=None, disabled=False):
    ids_file, out_file = tmp / "ids.json", tmp / "logits.json"
    ids_file.write_text(json.dumps(IDS))
    args = ["logits", "--model", model_dir, "--ids-json", ids_file, "--out", out_file]
    if adapter_dir is not None:
        args += ["--adapter", adapter_dir]
    if disabled:
        args.append("--disabled")
    driver(*args)
    j = json.loads(out_file.read_text())
    return torch.tensor(j["data"], dtype=torch.float64).view(*j["shape"])


def hf_base(model_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@torch.no_grad()
def hf_logits(model):
    return model(input_ids=torch.tensor(IDS)).logits.double()


def lora_modules(peft_model):
    return sorted(n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)


def file_modules(adapter_dir):
    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    return sorted({k[len("base_model.model."):-len(".lora_A.weight")] for k in keys if k.endswith(".lora_A.weight")})


def maxdiff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("variant", [
    dict(r=4, alpha=8, targets="q_proj,v_proj"),
    dict(r=2, alpha=5, targets="all-linear", rslora=True),
    dict(r=3, alpha=6, targets="k_proj,mlp.down_proj", layers="1"),
])
def test_peft_loads_tune_adapter(base, tmp_path, variant):
    adapter = tmp_path / "adapter"
    args = ["random-adapter", "--model", base, "--out", adapter, "--r", variant["r"], "--alpha", variant["alpha"],
            "--targets", variant["targets"], "--seed", 5]
    if variant.get("rslora"):
        args.append("--rslora")
    if variant.get("layers"):
        args += ["--layers", variant["layers"]]
    driver(*args)

    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == variant["r"]
    assert config["target_modules"] == sorted(config["target_modules"])

    model = peft.PeftModel.from_pretrained(hf_base(base), str(adapter)).eval()
    # peft selects exactly the modules tune adapted (target_modules / layers_to_transform agree).
    assert [n.replace("base_model.model.", "", 1) for n in lora_modules(model)] == file_modules(adapter)
    ours = tune_logits(tmp_path, base, adapter)
    theirs = hf_logits(model)
    base_logits = hf_logits(hf_base(base))
    print(f"\n[figure] tune adapter -> peft: max |logit diff| {maxdiff(ours, theirs):.2e} "
          f"(adapter effect {maxdiff(theirs, base_logits):.2e})")
    assert maxdiff(ours, theirs) <= TOL, maxdiff(ours, theirs)
    assert maxdiff(theirs, base_logits) > 100 * TOL, "the adapter should change the logits"
    # Adapters disabled: tune gives the base model's logits.
    assert maxdiff(tune_logits(tmp_path, base, adapter, disabled=True), base_logits) <= TOL


def make_peft_adapter(base, out, **kwargs):
    torch.manual_seed(3)
    cfg = peft.LoraConfig(task_type="CAUSAL_LM", **kwargs)
    model = peft.get_peft_model(hf_base(base), cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, 0.0, 0.05)
    model.save_pretrained(str(out))
    return model.eval()


@pytest.mark.parametrize("kwargs", [
    dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]),
    dict(r=4, lora_alpha=16, target_modules="all-linear", use_rslora=True),
    dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
         rank_pattern={"v_proj": 2}, alpha_pattern={"model.layers.1.self_attn.q_proj": 3}),
    dict(r=2, lora_alpha=4, target_modules=["gate_proj", "down_proj"], layers_to_transform=[0]),
])
def test_tune_loads_peft_adapter(base, tmp_path, kwargs):
    adapter = tmp_path / "peft_adapter"
    model = make_peft_adapter(base, adapter, **kwargs)
    ours = tune_logits(tmp_path, base, adapter)
    theirs = hf_logits(model)
    print(f"\n[figure] peft adapter -> tune: max |logit diff| {maxdiff(ours, theirs):.2e} "
          f"(adapter effect {maxdiff(theirs, hf_logits(hf_base(base))):.2e})")
    assert maxdiff(ours, theirs) <= TOL, maxdiff(ours, theirs)
    assert maxdiff(theirs, hf_logits(hf_base(base))) > 100 * TOL


def test_merge_matches_peft_merge_and_unload(base, tmp_path):
    adapter = tmp_path / "peft_adapter"
    model = make_peft_adapter(base, adapter, r=4, lora_alpha=8, target_modules="all-linear",
                              rank_pattern={"down_proj": 2})
    merged_ref = model.merge_and_unload().eval()
    out = tmp_path / "merged"
    driver("merge", "--model", base, "--adapter", adapter, "--out", out)
    assert (out / "tokenizer_config.json").exists()
    ours = hf_base(out)  # transformers loads tune's merged directory
    print(f"\n[figure] merge: max |logit diff| vs merge_and_unload {maxdiff(hf_logits(ours), hf_logits(merged_ref)):.2e}")
    assert maxdiff(hf_logits(ours), hf_logits(merged_ref)) <= TOL
    ref_state = merged_ref.state_dict()
    for name, p in ours.state_dict().items():
        assert maxdiff(p, ref_state[name]) <= 1e-6, name


def test_unsupported_adapter_is_rejected(base, tmp_path):
    adapter = tmp_path / "dora"
    make_peft_adapter(base, adapter, r=2, lora_alpha=4, target_modules=["q_proj"], use_dora=True)
    proc = driver("logits", "--model", base, "--adapter", adapter, "--ids-json", tmp_path / "none.json",
                  "--out", tmp_path / "none.json", expect_ok=False)
    assert proc.returncode != 0
    assert "use_dora=true" in proc.stderr, proc.stderr

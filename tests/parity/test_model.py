"""Parity of tune's decoder with transformers: logits, padding, dtype conversion, greedy generation,
and checkpoints written by each side loaded by the other."""
import copy
import json
import random
from pathlib import Path

import pytest

try:
    import torch
    import transformers
    from safetensors import safe_open
except ImportError as e:  # pragma: no cover
    pytest.skip(f"transformers/torch not importable: {e}", allow_module_level=True)

import hf_models as hm

TOL = 1e-4
VARIANTS = sorted(hm.variants())
torch.set_num_threads(2)


def random_ids(batch, length, seed):
    rng = random.Random(seed)
    return [[rng.randrange(3, hm.VOCAB) for _ in range(length)] for _ in range(batch)]


def hf_logits(model, ids, mask=None, positions=None):
    with torch.no_grad():
        kwargs = {}
        if mask is not None:
            kwargs["attention_mask"] = torch.tensor(mask)
        if positions is not None:
            kwargs["position_ids"] = torch.tensor(positions)
        return model(torch.tensor(ids), **kwargs).logits.float()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (directory, transformers model), built once per module."""
    out = {}
    for i, name in enumerate(VARIANTS):
        d = tmp_path_factory.mktemp(name)
        out[name] = (d, hm.build(name, d, seed=100 + i))
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_logits_match_transformers(name, saved, tmp_path):
    directory, model = saved[name]
    ids = random_ids(2, 16, seed=1)  # 16 > sliding window 5, > llama3 high-frequency wavelength
    ours = hm.tune_logits(directory, ids, tmp_path)
    theirs = hf_logits(model, ids)
    diff = (ours - theirs).abs().max().item()
    print(f"{name}: fp32 max abs logit diff {diff:.3g} (logit scale {theirs.abs().max().item():.3g})")
    assert ours.shape == theirs.shape
    assert diff <= TOL


@pytest.mark.parametrize("name", ["llama_gqa_llama3", "qwen3_qk_norm_head_dim", "mistral_sliding_window"])
def test_left_padded_batch_matches_transformers(name, saved, tmp_path):
    directory, model = saved[name]
    ids = random_ids(2, 12, seed=2)
    mask = [[1] * 12, [0] * 4 + [1] * 8]
    ids[1][:4] = [0] * 4
    positions = [[max(sum(row[: t + 1]) - 1, 0) for t in range(12)] for row in mask]
    ours = hm.tune_logits(directory, ids, tmp_path, mask=mask)  # positions derived from the mask
    theirs = hf_logits(model, ids, mask=mask, positions=positions)
    real = torch.tensor(mask, dtype=torch.bool)
    diff = (ours - theirs).abs()[real].max().item()
    print(f"{name}: left-padded fp32 max abs diff {diff:.3g}")
    assert diff <= TOL


FEATURE_OFF = {
    # variant -> (what is switched off, config.json edit)
    "mistral_sliding_window": ("sliding window", lambda c: c.update(sliding_window=None)),
    "qwen2_sliding_layers": ("sliding window", lambda c: (c.update(use_sliding_window=False, sliding_window=None),
                                                           c.pop("layer_types", None))),
    "llama_gqa_llama3": ("llama3 rope scaling", lambda c: c.update(rope_parameters={"rope_type": "default",
                                                                                    "rope_theta": 10000.0})),
    "qwen3_qk_norm_head_dim": ("q/k norms", None),
}


@pytest.mark.parametrize("name", sorted(FEATURE_OFF))
def test_features_change_the_logits(name, saved, tmp_path):
    """The parity above means something: without the feature, logits move far beyond TOL."""
    directory, model = saved[name]
    what, edit = FEATURE_OFF[name]
    ids = random_ids(2, 16, seed=1)
    if edit is None:  # q/k norm weights back to ones
        variant = copy.deepcopy(model)
        with torch.no_grad():
            for layer in variant.model.layers:
                layer.self_attn.q_norm.weight.fill_(1.0)
                layer.self_attn.k_norm.weight.fill_(1.0)
    else:
        config = json.loads((directory / "config.json").read_text())
        edit(config)
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "config.json").write_text(json.dumps(config))
        (tmp_path / "m" / "model.safetensors").symlink_to(directory / "model.safetensors")
        variant = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    moved = (hf_logits(variant, ids) - hf_logits(model, ids)).abs().max().item()
    print(f"{name}: without {what} logits move by {moved:.3g}")
    assert moved > 100 * TOL


def test_bf16_checkpoint_is_converted_on_load(saved, tmp_path):
    _, model = saved["qwen2_biases"]
    bf16_dir = tmp_path / "bf16"
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(bf16_dir)  # the fixture's model stays fp32
    with safe_open(str(bf16_dir / "model.safetensors"), "pt") as f:
        assert f.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16
    reference = transformers.AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32).eval()
    ids = random_ids(1, 10, seed=3)
    ours = hm.tune_logits(bf16_dir, ids, tmp_path)
    diff = (ours - hf_logits(reference, ids)).abs().max().item()
    print(f"bf16 files loaded as fp32: max abs diff {diff:.3g}")
    assert diff <= TOL


@pytest.mark.parametrize("name", ["llama_gqa_llama3", "qwen2_biases", "qwen3_qk_norm_head_dim", "mistral_sliding_window"])
def test_greedy_generation_matches_transformers(name, saved, tmp_path):
    directory, model = saved[name]
    prompts = [random_ids(1, n, seed=10 + n)[0] for n in (3, 9, 6)]
    # No stop token on either side: 32 tokens each.
    ours = hm.tune_generate(directory, prompts, tmp_path, "--max-new-tokens", 32)
    for prompt, got in zip(prompts, ours):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 do_sample=False, max_new_tokens=32, min_new_tokens=32, eos_token_id=None,
                                 pad_token_id=0)
        expected = out[0, len(prompt):].tolist()
        assert got["tokens"] == expected, f"prompt {prompt}"
        assert got["finish"] == "length"


def test_stop_token_is_kept_and_ends_the_sequence(saved, tmp_path):
    directory, model = saved["llama_gqa_llama3"]
    prompt = random_ids(1, 5, seed=4)[0]
    free = hm.tune_generate(directory, [prompt], tmp_path, "--max-new-tokens", 16)[0]["tokens"]
    stop = free[5]
    got = hm.tune_generate(directory, [prompt], tmp_path, "--max-new-tokens", 16, "--stop", stop)[0]
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=16, eos_token_id=stop,
                             pad_token_id=0)
    assert got["tokens"] == out[0, len(prompt):].tolist()
    assert got["tokens"][-1] == stop and got["finish"] == "stop"


@pytest.mark.parametrize("name", ["llama_gqa_llama3", "qwen2_biases", "qwen3_qk_norm_head_dim", "mistral_sliding_window"])
def test_checkpoint_saved_by_tune_loads_in_transformers(name, saved, tmp_path):
    directory, model = saved[name]
    out = tmp_path / "resaved"
    hm.run_driver("resave", "--model", directory, "--out", out)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [type(model).__name__]
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert ("lm_head.weight" in f.keys()) == (not model.config.tie_word_embeddings)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(reloaded) is type(model)
    ids = random_ids(2, 16, seed=5)
    diff = (hf_logits(reloaded, ids) - hf_logits(model, ids)).abs().max().item()
    assert diff == 0.0


def test_sharded_save_loads_in_transformers_and_tune(saved, tmp_path):
    directory, model = saved["llama_gqa_llama3"]
    out = tmp_path / "sharded"
    hm.run_driver("resave", "--model", directory, "--out", out, "--max-shard-bytes", 100_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert not (out / "model.safetensors").exists()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = random_ids(1, 8, seed=6)
    assert (hf_logits(reloaded, ids) - hf_logits(model, ids)).abs().max().item() == 0.0
    assert (hm.tune_logits(out, ids, tmp_path) - hf_logits(model, ids)).abs().max().item() <= TOL


def test_random_tiny_preset_loads_in_transformers(tmp_path):
    out = tmp_path / "tiny"
    hm.run_driver("save-random", "--preset", "tiny", "--vocab", 300, "--out", out, "--seed", 1)
    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    n = sum(p.numel() for p in model.parameters())
    assert model.config.vocab_size == 300 and model.config.tie_word_embeddings
    assert 0.5e6 < n < 3e6
    w = model.model.embed_tokens.weight
    assert abs(w.std().item() - 0.02) < 0.002  # initializer_range
    rng = random.Random(7)
    ids = [[rng.randrange(300) for _ in range(20)]]
    diff = (hm.tune_logits(out, ids, tmp_path) - hf_logits(model, ids)).abs().max().item()
    assert diff <= TOL


def test_missing_tensor_is_named(saved, tmp_path):
    from safetensors.torch import load_file, save_file
    directory, _ = saved["qwen2_biases"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((directory / "config.json").read_text())
    tensors = load_file(str(directory / "model.safetensors"))
    del tensors["model.layers.1.self_attn.k_proj.bias"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AssertionError, match=r"model\.layers\.1\.self_attn\.k_proj\.bias"):
        hm.tune_logits(broken, [[1, 2, 3]], tmp_path)
    tensors = load_file(str(directory / "model.safetensors"))
    tensors["model.norm.weight"] = torch.ones(63)
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AssertionError, match=r"model\.norm\.weight.*\[63\].*\[64\]"):
        hm.tune_logits(broken, [[1, 2, 3]], tmp_path)

"""Small random transformers models for the model parity tests, and a runner for tune_model_driver.

Every parameter is randomised (biases and norm weights included, which transformers initialises to
0 and 1) so that a wrong bias, norm or head mapping shows up in the logits.
"""
import json
import os
import subprocess
from pathlib import Path

import torch

VOCAB = 128


def _common(**over):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(over)
    return base


def variants():
    """name -> zero-argument factory of a transformers model (fp32, eval mode)."""
    import transformers as tf

    def llama_gqa_llama3():
        # original_max_position_embeddings 64 puts the head's wavelengths (6 .. ~2e4) in all three
        # llama3 bands: kept, interpolated and divided by the factor.
        return tf.LlamaForCausalLM(tf.LlamaConfig(**_common(
            rope_theta=10000.0, tie_word_embeddings=False,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64})))

    def llama_tied_biases():
        return tf.LlamaForCausalLM(tf.LlamaConfig(**_common(
            rope_theta=500000.0, tie_word_embeddings=True, attention_bias=True, mlp_bias=True)))

    def qwen2_biases():
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**_common(
            rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6)))

    def qwen2_sliding_layers():
        # Layer 0 full attention, layer 1 a window of 5 (use_sliding_window + max_window_layers).
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**_common(
            rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=True,
            sliding_window=5, max_window_layers=1)))

    def qwen3_qk_norm_head_dim():
        # head_dim 32 with hidden 64 and 4 heads: q_proj outputs 128 features, not 64.
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(**_common(
            head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6)))

    def mistral_sliding_window():
        return tf.MistralForCausalLM(tf.MistralConfig(**_common(
            rope_theta=10000.0, sliding_window=5, tie_word_embeddings=False)))

    return {f.__name__: f for f in (llama_gqa_llama3, llama_tied_biases, qwen2_biases,
                                    qwen2_sliding_layers, qwen3_qk_norm_head_dim,
                                    mistral_sliding_window)}


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)
    return model.eval()


def build(name, directory, seed=0):
    model = randomise(variants()[name](), seed)
    model.save_pretrained(directory)
    return model


def driver():
    path = os.environ.get("TUNE_MODEL_DRIVER")
    if not path:
        raise RuntimeError("TUNE_MODEL_DRIVER is not set (ctest sets it to the built tune_model_driver)")
    return path


def run_driver(*args, cwd=None):
    result = subprocess.run([driver(), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"tune_model_driver {' '.join(map(str, args))} failed "
                             f"({result.returncode}):\n{result.stderr}")
    return result


def tune_logits(model_dir, ids, tmp: Path, mask=None, dtype="f32"):
    from safetensors.torch import load_file
    (tmp / "ids.json").write_text(json.dumps(ids))
    args = ["logits", "--model", model_dir, "--ids-json", tmp / "ids.json", "--out", tmp / "logits.safetensors",
            "--dtype", dtype]
    if mask is not None:
        (tmp / "mask.json").write_text(json.dumps(mask))
        args += ["--mask-json", tmp / "mask.json"]
    run_driver(*args)
    return load_file(str(tmp / "logits.safetensors"))["logits"]


def tune_generate(model_dir, prompts, tmp: Path, *extra):
    (tmp / "prompts.json").write_text(json.dumps(prompts))
    out = run_driver("generate", "--model", model_dir, "--ids-json", tmp / "prompts.json", *extra)
    return json.loads(out.stdout)

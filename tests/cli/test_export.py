"""`tune export` and `tune import` as users run them: a model (with a LoRA adapter merged in) goes to
GGUF and back to the same weights; a bad type is a usage error."""
import pytest
from safetensors.numpy import load_file

from conftest import ROOT, run_tune


def weights(d):
    return load_file(str(d / "model.safetensors"))


def test_a_merged_adapter_goes_to_gguf_and_back(tmp_path, tiny_model, addition_data):
    run_tune("sft", "--config", ROOT / "configs/sft/tiny-lora.yaml", f"model.path={tiny_model}",
             f"data.datasets[0].path={addition_data / 'train.jsonl'}", "data.eval_path=", "eval.every=0",
             "--max-steps", "3", "--output-dir", tmp_path / "lora", "train.threads=1")
    adapter = tmp_path / "lora" / "final"
    run_tune("merge", "--model", tiny_model, "--adapter", adapter, "--out", tmp_path / "merged")
    run_tune("export", "--model", tiny_model, "--adapter", adapter, "--gguf", tmp_path / "m.gguf", "--type", "f32")
    run_tune("import", "--gguf", tmp_path / "m.gguf", "--out", tmp_path / "back")
    a, b = weights(tmp_path / "merged"), weights(tmp_path / "back")
    assert set(a) == set(b)
    for name in a:  # f32 both ways, the rotary row order undone: bit for bit
        assert (a[name] == b[name]).all(), name
    base = weights(tiny_model)
    assert any((base[n] != a[n]).any() for n in a), "the adapter changed nothing"
    assert not list(tmp_path.glob("*.merged*")), "the temporary merged directory is left behind"


def test_bad_export_and_import_arguments_are_named(tmp_path, tiny_model):
    p = run_tune("export", "--model", tiny_model, "--gguf", tmp_path / "x.gguf", "--type", "q3", check=False)
    assert p.returncode == 2 and "--type" in p.stderr
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\0" * 10)
    p = run_tune("import", "--gguf", tmp_path / "bad.gguf", "--out", tmp_path / "out", check=False)
    assert p.returncode == 1 and "bad.gguf" in p.stderr
    assert not (tmp_path / "out").exists()

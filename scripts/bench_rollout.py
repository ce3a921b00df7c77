#!/usr/bin/env python3
"""Rollout throughput: tune's rollout engine against Hugging Face `generate` on the same random model,
the same prompts, the same torch threads.

    .venv/bin/python scripts/bench_rollout.py --driver build/bin/tune_rollout_driver --tune build/bin/tune \\
        [--new-tokens 128] [--repeat 2] [--cases b16,g8] [--threads 2] [--model HF_DIR]

Cases (T = 1, no top-k / top-p, no EOS on either side: every row runs to --new-tokens):
  b16  16 distinct prompts of 64 tokens, one sample each
  b64  64 distinct prompts of 64 tokens, one sample each
  g8   8 prompts of 256 tokens, G = 8 samples each (64 rows): tune prefills each prompt once and
       shares its KV cache with its 8 rows; HF's num_return_sequences=8 expands the batch first and
       prefills 64 rows.
Sides run interleaved (tune, HF, tune, HF, ...); the best repeat of each is reported. tokens/s
counts generated tokens over the whole call (prefill included). tune's split comes from its engine
stats (exact on the CPU: every op is synchronous there); HF's prefill is a separately timed forward
pass over the same batch, and decode+sampling is the rest of its generate call.
Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {"b16": (16, 64, 1), "b64": (64, 64, 1), "g8": (8, 256, 8)}  # prompts, prompt tokens, G


def make_prompts(count, length, vocab, seed):
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(count)]


def tune_run(args, model_dir, ids_file, group):
    cmd = [args.driver, "--model", str(model_dir), "--ids-json", str(ids_file), "--group", str(group),
           "--max-new-tokens", str(args.new_tokens), "--temperature", "1", "--threads", str(args.threads),
           "--stop-check", str(args.stop_check), "--seed", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def hf_worker(args):
    """Runs in its own process: one generate call (plus a timed prefill) on the prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    prompts = json.loads(Path(args.ids).read_text())
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa").eval()
    ids = torch.tensor(prompts)  # equal lengths: no padding
    mask = torch.ones_like(ids)
    with torch.no_grad():
        # The prefill HF's generate does: the batch expanded to its G rows, one forward with a cache.
        expanded = ids.repeat_interleave(args.group, 0)
        t0 = time.perf_counter()
        model(input_ids=expanded, attention_mask=torch.ones_like(expanded), use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             num_return_sequences=args.group, max_new_tokens=args.new_tokens,
                             min_new_tokens=args.new_tokens, eos_token_id=None, pad_token_id=0)
        seconds = time.perf_counter() - t0
    tokens = (out.shape[1] - ids.shape[1]) * out.shape[0]
    import transformers
    print(json.dumps({"rows": out.shape[0], "completion_tokens": tokens, "seconds": seconds,
                      "tokens_per_s": tokens / seconds, "prefill_s": prefill, "torch": torch.__version__,
                      "transformers": transformers.__version__}))


def hf_run(args, model_dir, ids_file, group):
    cmd = [sys.executable, __file__, "--hf-worker", "--model", str(model_dir), "--ids", str(ids_file),
           "--group", str(group), "--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--driver", default="build/bin/tune_rollout_driver")
    p.add_argument("--tune", default="build/bin/tune", help="for `tune init-model`")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeat", type=int, default=2, help="interleaved runs per side; the best is reported")
    p.add_argument("--cases", default="b16,g8", help="comma list of " + ", ".join(CASES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stop-check", type=int, default=8)
    p.add_argument("--prompt-scale", type=float, default=1.0, help="shrink prompt lengths (quick checks)")
    p.add_argument("--work", help="working directory (default: a temporary one)")
    p.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help="an HF model directory (default: a seeded llama-100m made by init-model)")
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--group", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hf_worker:
        return hf_worker(args)

    args.driver = str(Path(args.driver).resolve())
    work = Path(args.work or tempfile.mkdtemp(prefix="tune-bench-rollout-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model).resolve() if args.model else work / "llama-100m"
    if not args.model and not (model_dir / "config.json").exists():
        subprocess.run([str(Path(args.tune).resolve()), "-q", "init-model", "--preset", "llama-100m", "--seed", "0",
                        "--out", str(model_dir)], check=True)
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]

    rows = []
    for name in args.cases.split(","):
        count, length, group = CASES[name]
        length = max(1, int(length * args.prompt_scale))
        ids_file = work / f"{name}.json"
        ids_file.write_text(json.dumps(make_prompts(count, length, vocab, seed=len(name) + count)))
        tune_best = hf_best = None
        for _ in range(args.repeat):
            t = tune_run(args, model_dir, ids_file, group)
            h = hf_run(args, model_dir, ids_file, group)
            tune_best = t if tune_best is None or t["seconds"] < tune_best["seconds"] else tune_best
            hf_best = h if hf_best is None or h["seconds"] < hf_best["seconds"] else hf_best
        rows.append((name, count, length, group, tune_best, hf_best))

    load = os.getloadavg()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    h0 = rows[0][5]
    print(f"\n{model_dir.name} float32, T = 1, {args.new_tokens} new tokens, {args.threads} threads, best of {args.repeat} "
          f"interleaved; torch {h0['torch']}, transformers {h0['transformers']}; {cpu}; load {load:.2f} at the end\n")
    print("| case | rows | implementation | tokens/s | seconds | prefill s | decode s | sampling s | other s | tune / HF |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, count, length, group, t, h in rows:
        label = f"{name}: {count} prompts x {length} tokens, G {group}"
        other = t["seconds"] - t["prefill_s"] - t["decode_s"] - t["sampling_s"]
        print(f"| {label} | {t['rows']} | tune | {t['tokens_per_s']:.1f} | {t['seconds']:.2f} | {t['prefill_s']:.2f} | "
              f"{t['decode_s']:.2f} | {t['sampling_s']:.2f} | {other:.2f} | {t['tokens_per_s'] / h['tokens_per_s']:.2f}x |")
        print(f"| {label} | {h['rows']} | transformers generate | {h['tokens_per_s']:.1f} | {h['seconds']:.2f} | "
              f"{h['prefill_s']:.2f} (separate) | {h['seconds'] - h['prefill_s']:.2f} (with sampling) | | | |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""SFT step throughput and peak memory: `tune sft` against Hugging Face transformers (+ peft) on the
same ~100M-parameter model, the same token batches, the same torch threads.

    .venv/bin/python scripts/bench_sft.py --tune build/bin/tune [--steps 6] [--warmup 2] [--batch 2] [--seq 512]

Both sides train on identical rows: `--batch` documents of exactly `--seq` tokens each (the same
tokenizer.json; no padding, loss on every token), AdamW at a constant lr, gradient clipping at 1.0,
float32, no gradient checkpointing. LoRA: r 16, alpha 32, dropout 0, all linear projections.

Throughput counts only the steps after `--warmup`: tune's from its metrics.jsonl (cumulative
tokens/s of every step, so the time of steps warmup+1..N follows), Hugging Face's from a timer
around each step. Peak memory is the process's peak resident set size (getrusage) right after the
last measured step, in both processes. Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_documents(count, words_per_doc, seed):
    rng = random.Random(seed)
    vocab = ["the", "model", "learns", "from", "tokens", "while", "gradients", "flow", "through", "every",
             "layer", "and", "adapter", "weights", "update", "slowly", "under", "a", "warm", "schedule",
             "data", "batches", "arrive", "in", "order", "loss", "falls", "step", "by", "tune"]
    return [" ".join(rng.choice(vocab) for _ in range(words_per_doc)) for _ in range(count)]


def tune_side(args, model_dir, data_file, work, lora):
    out = work / ("tune-lora" if lora else "tune-full")
    cfg = {
        "output_dir": str(out),
        "seed": 1,
        "method": "lora" if lora else "full",
        "model": {"path": str(model_dir), "dtype": "float32", "device": "cpu"},
        "data": {"datasets": [{"path": str(data_file), "format": "text"}], "max_seq_len": args.seq,
                 "truncation": "right", "packing": False, "mask": "all", "eval_fraction": 0.0},
        "optim": {"lr": 1e-4, "schedule": "constant", "warmup_steps": 0, "warmup_ratio": 0.0},
        "train": {"max_steps": args.warmup + args.steps, "batch_size": args.batch, "log_every": 1,
                  "threads": args.threads, "max_grad_norm": 1.0},
        "eval": {"every": 0, "at_start": False},
    }
    if lora:
        cfg["lora"] = {"r": 16, "alpha": 32, "dropout": 0.0, "targets": ["all-linear"]}
    cfg_file = work / f"{out.name}.json"
    cfg_file.write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([args.tune, "-q", "sft", "--config", str(cfg_file)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = {r["step"]: r for r in records if "tokens_per_s" in r}
    tokens_per_step = args.batch * args.seq
    # tokens_per_s is cumulative from the loop's start: elapsed(n) = n * tokens_per_step / tps(n).
    elapsed = lambda n: n * tokens_per_step / steps[n]["tokens_per_s"]
    last = args.warmup + args.steps
    seconds = elapsed(last) - elapsed(args.warmup)
    return {"tokens_per_s": args.steps * tokens_per_step / seconds, "s_per_step": seconds / args.steps,
            "peak_rss": steps[last]["peak_memory_bytes"], "loss": [steps[n]["loss"] for n in sorted(steps)]}


def hf_worker(args):
    """Runs in its own process (so its peak RSS is its own)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    tok = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
    docs = [json.loads(line)["text"] for line in Path(args.data).read_text().splitlines()]
    rows = [tok.encode(d, add_special_tokens=False).ids[: args.seq] for d in docs]
    assert all(len(r) == args.seq for r in rows), "documents shorter than --seq"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    if args.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        batch = torch.tensor([rows[(step * args.batch + i) % len(rows)] for i in range(args.batch)])  # [B, T]
        t0 = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    seconds = sum(times[args.warmup:])
    print(json.dumps({"tokens_per_s": args.steps * args.batch * args.seq / seconds, "s_per_step": seconds / args.steps,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "loss": losses,
                      "trainable": sum(p.numel() for p in params), "torch": torch.__version__}))


def hf_side(args, model_dir, data_file, lora):
    cmd = [sys.executable, __file__, "--hf-worker", "--model", str(model_dir), "--data", str(data_file),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch), "--seq", str(args.seq),
           "--threads", str(args.threads)] + (["--lora"] if lora else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tune", default="build/bin/tune")
    p.add_argument("--steps", type=int, default=6, help="measured steps")
    p.add_argument("--warmup", type=int, default=2, help="steps before measuring")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", help="working directory (default: a temporary one)")
    p.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.hf_worker:
        return hf_worker(args)

    args.tune = str(Path(args.tune).resolve())
    work = Path(args.work or tempfile.mkdtemp(prefix="tune-bench-sft-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "llama-100m"
    if not (model_dir / "config.json").exists():
        subprocess.run([args.tune, "-q", "init-model", "--preset", "llama-100m", "--seed", "0", "--out", str(model_dir)],
                       check=True)
    data_file = work / "docs.jsonl"
    docs = make_documents(max(64, args.batch * (args.steps + args.warmup)), 700, seed=3)
    data_file.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))

    results = {}
    for lora in (False, True):
        name = "LoRA r16 all-linear" if lora else "full"
        results[("tune", name)] = tune_side(args, model_dir, data_file, work, lora)
        results[("hf", name)] = hf_side(args, model_dir, data_file, lora)

    load = os.getloadavg()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    hf = next(r for (side, _), r in results.items() if side == "hf")
    print(f"\nllama-100m (100.1M parameters), batch {args.batch} x {args.seq} tokens, {args.threads} threads, "
          f"{args.steps} measured steps after {args.warmup}; torch {hf['torch']}; {cpu}; load {load:.2f}\n")
    print("| run | implementation | tokens/s | s/step | peak RSS (GiB) | tune / HF tokens/s | tune / HF memory |")
    print("|---|---|---|---|---|---|---|")
    for name in ("full", "LoRA r16 all-linear"):
        t, h = results[("tune", name)], results[("hf", name)]
        for side, r in (("tune", t), ("transformers" + (" + peft" if "LoRA" in name else ""), h)):
            ratio = f"{t['tokens_per_s'] / h['tokens_per_s']:.2f}x" if side == "tune" else ""
            mem = f"{t['peak_rss'] / h['peak_rss']:.2f}x" if side == "tune" else ""
            print(f"| {name} | {side} | {r['tokens_per_s']:.0f} | {r['s_per_step']:.2f} | {r['peak_rss'] / 2**30:.2f} | {ratio} | {mem} |")
    print("\nfirst/last losses:", {f"{s}/{n}": (round(r["loss"][0], 3), round(r["loss"][-1], 3)) for (s, n), r in results.items()})


if __name__ == "__main__":
    main()

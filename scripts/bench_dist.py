#!/usr/bin/env python3
"""Data parallelism on this machine (CPU, Gloo): what crosses the wire and what it costs.

    .venv/bin/python scripts/bench_dist.py --tune build/bin/tune [--steps 6]

1. Gloo all-reduce bandwidth between 2 local processes, through torch.distributed: the same Gloo
   that libtorch carries and tune's communicator calls (algbw = bytes / time; busbw = algbw x 2(n-1)/n,
   NCCL's convention).
2. Gradient bytes all-reduced per optimizer step for the shipped presets' shapes (LoRA adapters are
   float32 in tune; full fine-tuning sends the model's dtype), computed from the architectures, and
   checked against what `tune sft` itself reports (`dist/grad_bytes`) for the real-shape
   qwen2.5-0.5b preset (random weights, `tune init-model`).
3. `tune sft` LoRA on that model, 1 rank at batch 2 against 2 ranks at batch 1 (same global batch,
   one thread each): seconds per step, and the share of all-reduce time backward hid
   (1 - dist/grad_wait_s / the all-reduce time of those bytes at the measured bandwidth).
Prints Markdown for docs/benchmarks.md. Run it alone on a quiet machine.
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ARCH = {  # Hugging Face config values
    "Qwen2.5-0.5B": dict(hidden=896, layers=24, heads=14, kv=2, inter=4864, vocab=151936, tied=True),
    "Qwen2.5-7B": dict(hidden=3584, layers=28, heads=28, kv=4, inter=18944, vocab=152064, tied=False),
}
PRESETS = [  # (what, model, LoRA rank or None for full, targets, bytes per gradient element)
    ("configs/sft/qwen2.5-0.5b-lora.yaml (r 16, all-linear, float32 adapters)", "Qwen2.5-0.5B", 16, "all-linear", 4),
    ("configs/sft/qwen2.5-0.5b-full.yaml (bfloat16 on GPU)", "Qwen2.5-0.5B", None, None, 2),
    ("configs/sft/qwen2.5-0.5b-full.yaml (float32 on CPU)", "Qwen2.5-0.5B", None, None, 4),
    ("configs/sft/qwen2.5-7b-lora.yaml (r 64, attention, float32 adapters)", "Qwen2.5-7B", 64, "attention", 4),
    ("Qwen2.5-7B full, bfloat16 (no preset; for scale)", "Qwen2.5-7B", None, None, 2),
]


def linear_shapes(a):
    d, hd = a["hidden"], a["hidden"] // a["heads"]
    return {"q_proj": (d, d), "k_proj": (d, a["kv"] * hd), "v_proj": (d, a["kv"] * hd), "o_proj": (d, d),
            "gate_proj": (d, a["inter"]), "up_proj": (d, a["inter"]), "down_proj": (a["inter"], d)}


def trainable(a, rank, targets):
    shapes = linear_shapes(a)
    if rank is None:
        per_layer = sum(i * o for i, o in shapes.values()) + 2 * a["hidden"]
        bias = a["hidden"] + 2 * a["kv"] * (a["hidden"] // a["heads"])  # Qwen2: q, k, v biases
        emb = a["vocab"] * a["hidden"] * (1 if a["tied"] else 2)
        return a["layers"] * (per_layer + bias) + emb + a["hidden"]
    names = list(shapes) if targets == "all-linear" else ["q_proj", "k_proj", "v_proj", "o_proj"]
    return a["layers"] * sum(rank * (shapes[n][0] + shapes[n][1]) for n in names)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bandwidth_worker(rank, world, port, sizes, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    results = {}
    for n in sizes:
        t = torch.ones(n // 4)
        for _ in range(2):
            dist.all_reduce(t)
        reps = max(3, min(20, (256 << 20) // n))
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            dist.all_reduce(t)
        results[n] = (time.perf_counter() - t0) / reps
    if rank == 0:
        out.put(results)
    dist.destroy_process_group()


def gloo_bandwidth(sizes, world=2):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=bandwidth_worker, args=(r, world, port, sizes, q)) for r in range(world)]
    for p in procs:
        p.start()
    res = q.get(timeout=600)
    for p in procs:
        p.join()
    return res


def run_tune(tune, world, args, cwd):
    port = free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
        if world > 1:
            env.update(RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([tune, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(f"tune exited {p.returncode}: {err[-2000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq", type=int, default=128)
    a = ap.parse_args()
    tune = str(Path(a.tune).resolve())
    root = Path(__file__).resolve().parents[1]
    print(f"date {time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}")

    sizes = [1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20]
    bw = gloo_bandwidth(sizes)
    print("\n| message | all-reduce time | algbw | busbw |\n|---|---|---|---|")
    for n in sizes:
        t = bw[n]
        print(f"| {n >> 20} MiB | {t * 1e3:.1f} ms | {n / t / 1e9:.2f} GB/s | {n / t / 1e9:.2f} GB/s |")

    print("\n| preset | trainable | bytes all-reduced per step | Gloo time here (2 ranks) | 8 x H100 NVLink, NCCL busbw ~360 GB/s |\n|---|---|---|---|---|")
    big = bw[sizes[-1]]
    for config, model, rank, targets, full_bytes in PRESETS:
        n = trainable(ARCH[model], rank, targets)
        b = n * full_bytes
        gloo_s = b / (sizes[-1] / big)
        nccl_s = b * 2 * 7 / 8 / 360e9
        print(f"| {config} | {n / 1e6:.1f}M | {b / 1e6:.1f} MB | {gloo_s:.2f} s | {nccl_s * 1e3:.1f} ms |")

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        subprocess.run([tune, "init-model", "--preset", "qwen2.5-0.5b", "--seed", "0", "--out", d / "model"], check=True,
                       capture_output=True)
        subprocess.run([tune, "data", "synth", "--task", "addition", "--count", "400", "--seed", "1", "--out",
                        d / "train.jsonl"], check=True, capture_output=True)
        common = ["sft", "--config", root / "configs/sft/qwen2.5-0.5b-lora.yaml", f"model.path={d / 'model'}",
                  f"data.datasets[0].path={d / 'train.jsonl'}", "data.eval_fraction=0", "data.packing=false",
                  f"data.max_seq_len={a.seq}", "model.gradient_checkpointing=false", "train.grad_accum=1",
                  f"train.max_steps={a.steps}", "train.log_every=1", "train.save_every=0", "eval.every=0",
                  "train.threads=1"]
        rows = {}
        for world, batch in ((1, 2), (2, 1)):
            out = d / f"run{world}"
            t0 = time.perf_counter()
            run_tune(tune, world, [*common, f"train.batch_size={batch}", "-o", out], d)
            recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
            rows[world] = (time.perf_counter() - t0, recs)
        print(f"\n`tune sft` LoRA r16 all-linear, qwen2.5-0.5b shape, global batch 2 x {a.seq} tokens, 1 thread per rank, "
              f"{a.steps} steps:\n")
        print("| ranks | wall | tokens/s (whole job) | grad bytes/step | buckets | sent during backward | exposed wait/step | hidden share |\n|---|---|---|---|---|---|---|---|")
        for world, (wall, recs) in rows.items():
            last = recs[-1]
            if world == 1:
                print(f"| 1 | {wall:.0f} s | {last['tokens_per_s']:.0f} | - | - | - | - | - |")
                continue
            later = recs[1:]
            wait = sum(r["dist/grad_wait_s"] for r in later) / len(later)
            reduce_s = last["dist/grad_bytes"] / (sizes[2] / bw[sizes[2]])
            print(f"| {world} | {wall:.0f} s | {last['tokens_per_s']:.0f} | {last['dist/grad_bytes'] / 1e6:.1f} MB | "
                  f"{last['dist/grad_buckets']} | {last['dist/buckets_in_backward']} | {wait * 1e3:.1f} ms | "
                  f"{max(0.0, 1 - wait / reduce_s) * 100:.0f}% of ~{reduce_s * 1e3:.0f} ms |")
        n = trainable(ARCH["Qwen2.5-0.5B"], 16, "all-linear") * 4
        print(f"\nanalytic bytes for this preset: {n / 1e6:.1f} MB (tune reported {rows[2][1][-1]['dist/grad_bytes'] / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

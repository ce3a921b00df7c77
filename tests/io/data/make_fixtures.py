"""Writes the safetensors fixtures with the reference library (safetensors.torch.save_file) and a
JSON listing of what each file holds, as the reference reads it back.

Run from the repository root:  .venv/bin/python tests/io/data/make_fixtures.py
The C++ tests (tests/io/test_safetensors.cpp) read every file with our reader, compare against the
listing, and re-serialize with our writer expecting identical bytes.
"""
import json
import pathlib

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent


def ramp(shape, dtype, scale=0.5, offset=-1.0):
    n = 1
    for d in shape:
        n *= d
    # Multiples of 1/2 near zero: exact in BF16 and F16, so the listing's numbers are exact.
    return (torch.arange(n, dtype=torch.float64) * scale + offset).reshape(shape).to(dtype)


FIXTURES = {
    # The HF layout: {"format": "pt"} and a spread of dtypes, so the dtype sort is exercised.
    "mixed.safetensors": (
        {
            "model.embed.weight": ramp([3, 4], torch.bfloat16),
            "model.norm.weight": ramp([4], torch.float16, 0.25),
            "lm_head.weight": ramp([2, 3], torch.float32, 1.5, -3.0),
            "position_ids": torch.tensor([[0, 1, 2, -7, 1 << 40]], dtype=torch.int64),
            "scale": torch.tensor(2.75, dtype=torch.float32),  # shape [] (a scalar)
            "empty_rows": torch.zeros([0, 3], dtype=torch.float32),  # a 0 dimension, 0 bytes
            "counts": torch.tensor([7, -3, 100000], dtype=torch.int32),
            "mask": torch.tensor([True, False, True]),
            "bytes": torch.tensor([0, 255, 17], dtype=torch.uint8),
            "doubles": torch.tensor([0.1, -2.5e300], dtype=torch.float64),
            "fp8.e4m3": ramp([4], torch.float8_e4m3fn),
            "fp8.e5m2": ramp([2, 2], torch.float8_e5m2, 1.0),
            "u16": torch.tensor([1, 65535], dtype=torch.uint16),
            "u32": torch.tensor([4000000000], dtype=torch.uint32),
            "u64": torch.tensor([3, 1 << 50], dtype=torch.uint64),
            "i16": torch.tensor([-32768, 5], dtype=torch.int16),
            "i8": torch.tensor([-128, 127], dtype=torch.int8),
        },
        {"format": "pt"},
    ),
    # No metadata at all (the reference then writes no __metadata__ key); one dtype, so the order
    # is by name alone (bytewise: "a.10" < "a.2" < "b").
    "no_metadata.safetensors": (
        {
            "b": ramp([2], torch.float32),
            "a.2": ramp([1, 2], torch.float32, 2.0),
            "a.10": ramp([3], torch.float32, 0.25, 4.0),
        },
        None,
    ),
    # Names and metadata that need JSON escaping (quote, backslash, control characters, UTF-8).
    "escapes.safetensors": (
        {
            'quote"back\\slash': ramp([2], torch.float16),
            "tab\tnew\nline\x01": ramp([1], torch.float16, 1.0, 3.0),
            "naïve.权重": torch.tensor([1, 2], dtype=torch.int16),
        },
        {"note": 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f é 权'},
    ),
    # No tensors: the smallest valid file.
    "empty.safetensors": ({}, None),
}


def listing(path):
    entries = []
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
        for name in sorted(f.keys()):
            t = f.get_tensor(name)
            entries.append({
                "name": name,
                "dtype": f.get_slice(name).get_dtype(),
                "shape": list(t.shape),
                "values": t.flatten().to(torch.float64 if t.is_floating_point() else torch.int64).tolist(),
            })
    return {"metadata": metadata, "tensors": entries}


def main():
    out = {"safetensors_version": safetensors.__version__, "files": {}}
    for filename, (tensors, metadata) in FIXTURES.items():
        path = HERE / filename
        save_file(tensors, str(path), metadata=metadata)
        out["files"][filename] = listing(str(path))
    (HERE / "fixtures.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

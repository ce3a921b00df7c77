"""Writes the seed corpus for fuzz_safetensors (tests/fuzz/corpus/safetensors/): small valid files
and one file per reader check that fails it. Run: .venv/bin/python tests/fuzz/make_corpus.py
The reference fixtures (tests/io/data/*.safetensors) are copied in as further valid seeds."""
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus/safetensors"


def st(header, data: bytes = b"", length=None) -> bytes:
    raw = header if isinstance(header, bytes) else header.encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype, shape, begin, end):
    return '{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}' % (dtype, shape, begin, end)


SEEDS = {
    "valid_empty": st("{}"),
    "valid_two": st('{"__metadata__":{"format":"pt"},"a":%s,"b":%s}' % (entry("F32", "[2]", 0, 8), entry("U8", "[1,3]", 8, 11)),
                    bytes(range(11))),
    "valid_subbyte": st('{"f4":%s,"f6":%s}' % (entry("F4", "[2,2]", 0, 2), entry("F6_E3M2", "[4]", 2, 5)), b"abcde"),
    "valid_scalar_zero": st('{"s":%s,"z":%s}  ' % (entry("BF16", "[]", 0, 2), entry("I64", "[0,5]", 2, 2)), b"\x80\x3f"),
    "bad_too_small": b"\x02\x00\x00",
    "bad_header_too_large": struct.pack("<Q", 100_000_001) + b"{}",
    "bad_header_past_eof": st("{}", length=64),
    "bad_utf8": st(b'{"\xff":1}'),
    "bad_json_shape": st('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', b"1234"),
    "bad_offset_gap": st('{"a":%s}' % entry("U8", "[1]", 1, 2), b"xx"),
    "bad_overflow": st('{"a":%s}' % entry("U8", "[4294967296,4294967296]", 0, 0)),
    "bad_misaligned": st('{"a":%s}' % entry("F4", "[3]", 0, 2), b"xx"),
    "bad_size": st('{"a":%s}' % entry("F16", "[3]", 0, 4), b"xxxx"),
    "bad_trailing": st('{"a":%s}' % entry("U8", "[2]", 0, 2), b"xyz"),
    "bad_duplicate": st('{"a":%s,"a":%s}' % (entry("U8", "[1]", 0, 1), entry("U8", "[1]", 0, 1)), b"x"),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (OUT / name).write_bytes(data)
    for fixture in sorted((ROOT / "tests/io/data").glob("*.safetensors")):
        shutil.copyfile(fixture, OUT / ("ref_" + fixture.stem))


if __name__ == "__main__":
    main()

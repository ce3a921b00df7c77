"""Writes the seed corpus for fuzz_gguf (tests/fuzz/corpus/gguf/) with the `gguf` package's writer:
a tiny llama-arch model with tokenizer metadata and tensors of several types, the same as GGUF v2
and with a 64-byte alignment, metadata of every value type with nested arrays, and a header-only
file. Run: .venv/bin/python tests/fuzz/make_gguf_corpus.py"""
import pathlib
import struct

import numpy as np
import gguf

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus/gguf"


def tiny_model(path, alignment=None, version=None):
    rng = np.random.default_rng(0)
    D, I, V, H, KV = 32, 64, 40, 2, 1
    hd = D // H
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_feed_forward_length(I)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(97, 97 + 26)] + \
             ["Ġ", "Ġt", "he", "in", "Ġa", "1", "2", "3", "Ċ", "er", "an"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens[:V])
    w.add_token_types([3, 3, 3] + [1] * (V - 3))
    w.add_token_merges(["Ġ t", "h e", "i n", "Ġ a", "e r", "a n"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")

    def add(name, shape, qtype):
        x = rng.normal(0, 0.1, size=shape).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, x)
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)

    Q = gguf.GGMLQuantizationType
    add("token_embd.weight", (V, D), Q.Q8_0)
    add("blk.0.attn_norm.weight", (D,), Q.F32)
    add("blk.0.attn_q.weight", (D, D), Q.Q4_0)
    add("blk.0.attn_k.weight", (KV * hd, D), Q.Q4_1)
    add("blk.0.attn_v.weight", (KV * hd, D), Q.Q5_0)
    add("blk.0.attn_output.weight", (D, D), Q.Q5_1)
    add("blk.0.ffn_norm.weight", (D,), Q.F32)
    add("blk.0.ffn_gate.weight", (I, D), Q.F16)
    add("blk.0.ffn_up.weight", (I, D), Q.BF16)
    add("blk.0.ffn_down.weight", (D, I), Q.Q8_0)
    add("output_norm.weight", (D,), Q.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if version is not None:
        data = bytearray(path.read_bytes())
        data[4:8] = struct.pack("<I", version)
        path.write_bytes(bytes(data))


def k_quants(path):
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), "llama")
    for i, name in enumerate(["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]):
        qtype = gguf.GGMLQuantizationType[name]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(1, size), dtype=np.uint8)
        w.add_tensor(f"t{i}", raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def every_value_type(path):
    w = gguf.GGUFWriter(str(path), "llama")
    T = gguf.GGUFValueType
    w.add_uint8("a.u8", 1)
    w.add_int8("a.i8", -1)
    w.add_uint16("a.u16", 2)
    w.add_int16("a.i16", -2)
    w.add_uint32("a.u32", 3)
    w.add_int32("a.i32", -3)
    w.add_float32("a.f32", 0.5)
    w.add_bool("a.bool", True)
    w.add_string("a.str", "text")
    w.add_uint64("a.u64", 4)
    w.add_int64("a.i64", -4)
    w.add_float64("a.f64", 0.25)
    w.add_array("a.arr", [1, 2, 3])
    w.add_array("a.strs", ["x", "yz"])
    w.add_key_value("a.nested", [[1, 2], [3]], T.ARRAY)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tiny_model(OUT / "valid_tiny_llama")
    tiny_model(OUT / "valid_tiny_llama_v2", version=2)
    tiny_model(OUT / "valid_tiny_llama_align64", alignment=64)
    k_quants(OUT / "valid_k_quants")
    every_value_type(OUT / "valid_value_types")
    (OUT / "valid_header_only").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    (OUT / "bad_truncated").write_bytes((OUT / "valid_tiny_llama").read_bytes()[:-7])


if __name__ == "__main__":
    main()

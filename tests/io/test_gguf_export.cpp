// GGUF writer round trips (written -> GgufFile::parse/open -> the same metadata and tensors),
// quantisers on hand-computed values, and HF -> GGUF export on a tiny model that goes GGUF -> HF
// (our importer) -> GGUF. Parity with the `gguf` package and transformers is in
// tests/parity/test_gguf_export.py.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "support/error_text.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_export.h"
#include "tune/io/gguf_hf.h"
#include "tune/io/gguf_writer.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

namespace stdfs = std::filesystem;
using T = GgufValueType;

std::span<const uint8_t> bytes_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
template <class V>
std::span<const uint8_t> bytes_of(const std::vector<V>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(V)};
}

using test::error_of;
#define EXPECT_ERROR(stmt, text) EXPECT_NE(error_of([&] { stmt; }).find(text), std::string::npos) << error_of([&] { stmt; })

stdfs::path temp_dir(const std::string& name) {
  const stdfs::path d = stdfs::temp_directory_path() / str("tune_gguf_export_", name, "_", ::getpid());
  stdfs::remove_all(d);
  stdfs::create_directories(d);
  return d;
}

// ---- writer

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensors) {
  const std::vector<std::pair<std::string, GgufValue>> md = {
      {"general.architecture", GgufValue::string("llama")},
      {"u8", GgufValue::unsigned_int(T::UINT8, 255)},
      {"i8", GgufValue::signed_int(T::INT8, -128)},
      {"u16", GgufValue::unsigned_int(T::UINT16, 65535)},
      {"i16", GgufValue::signed_int(T::INT16, -32768)},
      {"u32", GgufValue::unsigned_int(T::UINT32, 4000000000u)},
      {"i32", GgufValue::signed_int(T::INT32, -2000000000)},
      {"f32", GgufValue::floating(T::FLOAT32, 1e-5)},
      {"bool", GgufValue::boolean(true)},
      {"str", GgufValue::string("Ünïcödé \n\"")},
      {"u64", GgufValue::unsigned_int(T::UINT64, ~uint64_t{0})},
      {"i64", GgufValue::signed_int(T::INT64, INT64_MIN)},
      {"f64", GgufValue::floating(T::FLOAT64, 0.1)},
      {"empty", GgufValue::array(T::INT32, {})},
      {"strs", GgufValue::array(T::STRING, {GgufValue::string("a"), GgufValue::string("")})},
      {"nested", GgufValue::array(T::ARRAY, {GgufValue::array(T::UINT8, {GgufValue::unsigned_int(T::UINT8, 7)}),
                                             GgufValue::array(T::BOOL, {GgufValue::boolean(false)})})},
  };
  std::vector<float> f32(3 * 5);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = 0.5f * static_cast<float>(i) - 3;
  std::vector<uint8_t> f16(2 * 7 * 2), q8(34 * 2);
  quantize(GgmlType::F16, std::vector<float>(14, 1.5f), f16);
  std::vector<float> q8_in(64);
  for (size_t i = 0; i < q8_in.size(); ++i) q8_in[i] = std::sin(static_cast<float>(i));
  quantize(GgmlType::Q8_0, q8_in, q8);
  const std::vector<GgufTensorBytes> tensors = {
      {"a.weight", {5, 3}, GgmlType::F32, bytes_of(f32)},  // 60 bytes: the next offset is padded to 64
      {"b", {7, 1, 2}, GgmlType::F16, f16},
      {"c.q8", {64}, GgmlType::Q8_0, q8},
  };
  const std::string bytes = serialize_gguf(md, tensors);
  const GgufFile f = GgufFile::parse(bytes_of(bytes), "mem");
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata_order().size(), md.size());
  for (size_t i = 0; i < md.size(); ++i) {
    SCOPED_TRACE(md[i].first);
    EXPECT_EQ(f.metadata_order()[i], md[i].first);  // the order given
    const GgufValue& v = f.metadata().at(md[i].first);
    EXPECT_EQ(v.type(), md[i].second.type());
    EXPECT_EQ(v.describe(10), md[i].second.describe(10));
  }
  EXPECT_EQ(*f.get_float("f32"), static_cast<double>(1e-5f));  // stored as float32
  EXPECT_EQ(*f.get_int("i64"), INT64_MIN);
  EXPECT_EQ(*f.get_uint("u64"), ~uint64_t{0});
  EXPECT_EQ(f.find("nested")->as_array()->at(0).element_type(), T::UINT8);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dims, tensors[i].dims);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.offset % 32, 0u);
    const auto data = f.data(t);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), tensors[i].bytes.begin(), tensors[i].bytes.end())) << t.name;
  }
  EXPECT_EQ(f.tensors()[1].offset, 64u);
  EXPECT_EQ(f.dequantize(f.tensors()[0]), f32);
  // Padded after the last tensor too, as the gguf package's writer pads.
  EXPECT_EQ((bytes.size() - f.data_offset()) % 32, 0u);
}

TEST(GgufWriter, AlignmentFromMetadataAndAtomicFile) {
  const stdfs::path dir = temp_dir("align");
  const stdfs::path path = dir / "m.gguf";
  const std::vector<float> v = {1, 2, 3};
  write_gguf(path,
             {{"general.architecture", GgufValue::string("llama")},
              {"general.alignment", GgufValue::unsigned_int(T::UINT32, 64)}},
             {{"x", {3}, GgmlType::F32, bytes_of(v)}, {"y", {3}, GgmlType::F32, bytes_of(v)}});
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensors()[1].offset, 64u);
  EXPECT_EQ(f.dequantize(f.tensors()[1]), v);
  // Nothing but the file: the temporary sibling was renamed.
  EXPECT_EQ(std::distance(stdfs::directory_iterator(dir), stdfs::directory_iterator()), 1);
  stdfs::remove_all(dir);
}

TEST(GgufWriter, RejectsMisuseAndLeavesNoPartialFile) {
  const std::vector<float> v(32, 1.0f);
  GgufWriter w("unused.gguf");
  w.add("k", GgufValue::boolean(true));
  EXPECT_ERROR(w.add("k", GgufValue::boolean(false)), "\"k\" added twice");
  EXPECT_ERROR(w.add("general.alignment", GgufValue::unsigned_int(T::UINT32, 48)), "power of two");
  EXPECT_ERROR(w.add("general.alignment", GgufValue::unsigned_int(T::UINT64, 64)), "UINT32 power of two");
  EXPECT_ERROR(w.add_tensor(std::string(64, 'n'), {32}, GgmlType::F32), "1 to 63 bytes");
  EXPECT_ERROR(w.add_tensor("t", {1, 1, 1, 1, 1}, GgmlType::F32), "5 dims");
  EXPECT_ERROR(w.add_tensor("t", {33}, GgmlType::Q8_0), "not a multiple of the Q8_0 block size 32");
  w.add_tensor("t", {32}, GgmlType::F32);
  EXPECT_ERROR(w.add_tensor("t", {32}, GgmlType::F32), "\"t\" added twice");
  EXPECT_ERROR(serialize_gguf({{"a", GgufValue::array(T::INT32, {GgufValue::string("x")})}}, {}),
               "metadata key \"a\"[0] is STRING in an array of INT32");
  EXPECT_ERROR(serialize_gguf({{"a", GgufValue::unsigned_int(T::UINT8, 300)}}, {}), "does not fit UINT8");
  EXPECT_ERROR(serialize_gguf({}, {{"t", {32}, GgmlType::F32, bytes_of(v).subspan(4)}}),
               "tensor \"t\" needs 128 bytes of F32, 124 given");

  const stdfs::path dir = temp_dir("partial");
  {
    GgufWriter p(dir / "m.gguf");
    p.add_tensor("a", {32}, GgmlType::F32);
    p.add_tensor("b", {32}, GgmlType::F32);
    p.begin_data();
    p.write_tensor_data(bytes_of(v));
    EXPECT_ERROR(p.finish(), "1 of 2 tensors have no data (the next is \"b\")");
  }  // destroyed unfinished: the temporary file is removed, no m.gguf appears
  EXPECT_TRUE(stdfs::is_empty(dir));
  stdfs::remove_all(dir);
}

// ---- quantisers

TEST(GgufQuant, HalfAndBfloatRoundToNearestEven) {
  auto f = [](uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  };
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // the tie above the largest half rounds to Inf
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);       // tie to even (0)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);       // tie to even (2)
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14) * (1 - std::ldexp(1.0f, -12))), 0x0400);  // rounds up to the smallest normal
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(f(0x7FC00000)), 0x7E00);
  EXPECT_EQ(fp32_to_fp16(f(0x7F800001)), 0x7C01);  // a NaN whose top mantissa bits are 0 stays a NaN
  EXPECT_EQ(fp32_to_fp16(f(0xFF800000)), 0xFC00);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(f(0x3F808000)), 0x3F80);  // tie to even
  EXPECT_EQ(fp32_to_bf16(f(0x3F818000)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(f(0x3F808001)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(f(0x7F800001)), 0x7FC0);  // NaN made quiet
  EXPECT_EQ(fp32_to_bf16(f(0x7F7FFFFF)), 0x7F80);  // rounds to Inf

  // Through dequantize: within half a unit in the last place.
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0, 3);
  std::vector<float> x(1000);
  for (float& v : x) v = n(rng);
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
    std::vector<uint8_t> q(ggml_nbytes(t, x.size()));
    quantize(t, x, q);
    std::vector<float> back(x.size());
    dequantize(t, q, back);
    const float ulp = t == GgmlType::F16 ? std::ldexp(1.0f, -10) : std::ldexp(1.0f, -7);
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_LE(std::fabs(back[i] - x[i]), std::fabs(x[i]) * ulp / 2 + 1e-7f) << ggml_type_name(t) << " " << x[i];
  }
}

TEST(GgufQuant, Q80ByHand) {
  std::vector<float> x(64, 0.0f);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) * 0.5f;  // amax 8 -> d = 8/127
  std::vector<uint8_t> q(68);
  quantize(GgmlType::Q8_0, x, q);
  const float d = 8.0f / 127.0f, id = 1.0f / d;
  uint16_t dh;
  std::memcpy(&dh, q.data(), 2);
  EXPECT_EQ(dh, fp32_to_fp16(d));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<int8_t>(q[2 + j]), static_cast<int8_t>(std::round(x[j] * id))) << j;
  EXPECT_EQ(static_cast<int8_t>(q[2]), -127);
  // The all-zero second block: d = 0, every q = 0.
  EXPECT_TRUE(std::all_of(q.begin() + 34, q.end(), [](uint8_t b) { return b == 0; }));
  std::vector<float> back(64);
  dequantize(GgmlType::Q8_0, q, back);
  for (int j = 0; j < 64; ++j) EXPECT_NEAR(back[j], x[j], d * 0.51f) << j;
  EXPECT_ERROR(quantize(GgmlType::Q8_0, std::vector<float>(31), q), "not a whole number of Q8_0 blocks");
  EXPECT_ERROR(quantize(GgmlType::Q4_K, std::vector<float>(256), q), "quantising to Q4_K is not supported");
}

// ---- export

TEST(GgufExport, PermuteIsTheInverseOfUnpermute) {
  const int64_t rows = 24, cols = 3, heads = 3;
  std::vector<float> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  std::vector<float> p = w;
  permute_rotary_rows(p, rows, cols, heads);
  EXPECT_NE(p, w);
  // Head 0, hd 8, half 4: GGUF row 2i+k holds HF row k*4+i, so GGUF row 1 is HF row 4.
  EXPECT_EQ(p[1 * cols], w[4 * cols]);
  unpermute_rotary_rows(p, rows, cols, heads);
  EXPECT_EQ(p, w);
  EXPECT_ERROR(permute_rotary_rows(p, rows, cols, 5), "do not split into 5 heads");
}

// A tiny llama GGUF (D 32, 2 heads of 16, 1 KV head, I 64, 2 layers, tied, byte-level vocabulary)
// written by our writer, imported by our importer into an HF directory.
struct Tiny {
  stdfs::path dir, gguf, hf;
  std::vector<std::pair<std::string, GgufValue>> md;
  std::vector<std::vector<float>> data;
  std::vector<GgufTensorBytes> tensors;
};

Tiny tiny(const std::string& name, const std::string& arch = "llama") {
  Tiny t;
  t.dir = temp_dir(name);
  t.gguf = t.dir / "tiny.gguf";
  t.hf = t.dir / "hf";
  const uint64_t D = 32, I = 64, H = 2, KV = 1, hd = 16;
  GgufValue::Array tokens, types;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    tokens.push_back(GgufValue::string(s));
    types.push_back(GgufValue::signed_int(T::INT32, 3));
  }
  for (int c = 33; c < 127; ++c) {
    tokens.push_back(GgufValue::string(std::string(1, static_cast<char>(c))));
    types.push_back(GgufValue::signed_int(T::INT32, 1));
  }
  for (const char* s : {"\xc4\xa0", "\xc4\xa0t", "he"}) {
    tokens.push_back(GgufValue::string(s));
    types.push_back(GgufValue::signed_int(T::INT32, 1));
  }
  const uint64_t V = tokens.size();
  auto u32 = [](uint64_t v) { return GgufValue::unsigned_int(T::UINT32, v); };
  t.md = {{"general.architecture", GgufValue::string(arch)},
          {arch + ".block_count", u32(2)},
          {arch + ".context_length", u32(256)},
          {arch + ".embedding_length", u32(D)},
          {arch + ".feed_forward_length", u32(I)},
          {arch + ".attention.head_count", u32(H)},
          {arch + ".attention.head_count_kv", u32(KV)},
          {arch + ".rope.freq_base", GgufValue::floating(T::FLOAT32, 100000.0)},
          {arch + ".attention.layer_norm_rms_epsilon", GgufValue::floating(T::FLOAT32, 1e-5)},
          {"tokenizer.ggml.model", GgufValue::string("gpt2")},
          {"tokenizer.ggml.pre", GgufValue::string("smollm")},
          {"tokenizer.ggml.tokens", GgufValue::array(T::STRING, tokens)},
          {"tokenizer.ggml.token_type", GgufValue::array(T::INT32, types)},
          {"tokenizer.ggml.merges", GgufValue::array(T::STRING, {GgufValue::string("\xc4\xa0 t"), GgufValue::string("h e")})},
          {"tokenizer.ggml.bos_token_id", u32(1)},
          {"tokenizer.ggml.eos_token_id", u32(2)},
          {"tokenizer.ggml.padding_token_id", u32(2)},
          {"tokenizer.ggml.add_bos_token", GgufValue::boolean(false)},
          {"tokenizer.chat_template", GgufValue::string("{% for m in messages %}{{ m['content'] }}{% endfor %}")}};
  std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes = {{"token_embd.weight", {D, V}}};
  for (int l = 0; l < 2; ++l) {
    const std::string g = str("blk.", l, ".");
    shapes.push_back({g + "attn_norm.weight", {D}});
    shapes.push_back({g + "attn_q.weight", {D, H * hd}});
    shapes.push_back({g + "attn_k.weight", {D, KV * hd}});
    shapes.push_back({g + "attn_v.weight", {D, KV * hd}});
    if (arch == "qwen2") {
      shapes.push_back({g + "attn_q.bias", {H * hd}});
      shapes.push_back({g + "attn_k.bias", {KV * hd}});
      shapes.push_back({g + "attn_v.bias", {KV * hd}});
    }
    shapes.push_back({g + "attn_output.weight", {H * hd, D}});
    shapes.push_back({g + "ffn_norm.weight", {D}});
    shapes.push_back({g + "ffn_gate.weight", {D, I}});
    shapes.push_back({g + "ffn_up.weight", {D, I}});
    shapes.push_back({g + "ffn_down.weight", {I, D}});
  }
  shapes.push_back({"output_norm.weight", {D}});
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0, 0.1f);
  t.data.reserve(shapes.size());
  for (const auto& [tname, dims] : shapes) {
    uint64_t count = 1;
    for (uint64_t d : dims) count *= d;
    std::vector<float> v(count);
    for (float& x : v) x = n(rng);
    t.data.push_back(std::move(v));
    t.tensors.push_back({tname, dims, GgmlType::F32, bytes_of(t.data.back())});
  }
  write_gguf(t.gguf, t.md, t.tensors);
  // Our importer: HF directory with float32 safetensors.
  const GgufFile f = GgufFile::open(t.gguf);
  write_gguf_hf_metadata(f, t.hf);
  std::vector<std::vector<float>> hf_data;
  std::vector<TensorBytes> st;
  const auto hf = gguf_hf_tensors(f);
  hf_data.reserve(hf.size());
  for (const auto& h : hf) {
    hf_data.push_back(gguf_hf_tensor_data(f, h));
    st.push_back({h.hf_name, DType::F32, std::vector<uint64_t>(h.shape.begin(), h.shape.end()), bytes_of(hf_data.back())});
  }
  write_safetensors(t.hf / "model.safetensors", st, {{"format", "pt"}});
  return t;
}

TEST(GgufExport, F32ExportReproducesTheImportedFile) {
  for (const std::string arch : {"llama", "qwen2"}) {
    SCOPED_TRACE(arch);
    Tiny t = tiny("f32_" + arch, arch);
    GgufExportOptions opt;
    opt.type = GgufExportType::F32;
    const GgufExportSummary s = export_gguf(t.hf, t.dir / "out.gguf", opt);
    EXPECT_EQ(s.architecture, arch);
    EXPECT_EQ(s.tokenizer_pre, "smollm");
    const GgufFile f = GgufFile::open(t.dir / "out.gguf");
    EXPECT_EQ(*f.get_string("general.architecture"), arch);
    EXPECT_EQ(*f.get_uint("general.file_type"), 0u);
    EXPECT_EQ(*f.get_uint(arch + ".rope.dimension_count"), 16u);
    EXPECT_EQ(*f.get_uint(arch + ".vocab_size"), 100u);
    // Every key of the source file, same type and value (the tokenizer and hyper-parameters).
    for (const auto& [key, value] : t.md) {
      SCOPED_TRACE(key);
      ASSERT_NE(f.find(key), nullptr);
      EXPECT_EQ(f.find(key)->type(), value.type());
      EXPECT_EQ(f.find(key)->describe(200), value.describe(200));
    }
    EXPECT_EQ(*f.get_strings("tokenizer.ggml.tokens"), *GgufFile::open(t.gguf).get_strings("tokenizer.ggml.tokens"));
    // Every tensor byte for byte (the Q/K permutation undone on import and redone on export).
    ASSERT_EQ(f.tensors().size(), t.tensors.size());
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied
    for (const auto& src : t.tensors) {
      const GgufTensorInfo* out = f.find_tensor(src.name);
      ASSERT_NE(out, nullptr) << src.name;
      EXPECT_EQ(out->dims, src.dims) << src.name;
      const auto data = f.data(*out);
      EXPECT_TRUE(std::equal(data.begin(), data.end(), src.bytes.begin(), src.bytes.end())) << src.name;
    }
    stdfs::remove_all(t.dir);
  }
}

TEST(GgufExport, TypesPerTensorAndHalfPrecisionInputs) {
  Tiny t = tiny("types");
  for (GgufExportType type : {GgufExportType::F16, GgufExportType::BF16, GgufExportType::Q8_0}) {
    GgufExportOptions opt;
    opt.type = type;
    opt.name = "tiny";
    const auto out = t.dir / str(gguf_export_type_name(type), ".gguf");
    const GgufExportSummary s = export_gguf(t.hf, out, opt);
    const GgufFile f = GgufFile::open(out);
    EXPECT_EQ(*f.get_string("general.name"), "tiny");
    const GgmlType main = type == GgufExportType::F16 ? GgmlType::F16 : type == GgufExportType::BF16 ? GgmlType::BF16 : GgmlType::Q8_0;
    for (const auto& info : f.tensors()) {
      const bool f32 = info.dims.size() == 1 || info.name.ends_with("_norm.weight");
      EXPECT_EQ(info.type, f32 ? GgmlType::F32 : main) << info.name;
    }
    EXPECT_EQ(s.tensor_types.at("F32"), 5u);  // 2 norms per layer and output_norm
  }
  // The same weights stored as BF16 in the HF directory (widened exactly on reading): the BF16
  // tensors are the same bytes, the F32 norms are the BF16-rounded values.
  const SafetensorsFile st = SafetensorsFile::open(t.hf / "model.safetensors");
  std::vector<std::vector<uint16_t>> bf;
  std::vector<TensorBytes> tb;
  bf.reserve(st.tensors().size());
  for (const auto& info : st.tensors()) {
    const auto raw = st.data(info);
    std::vector<float> v(info.numel());
    std::memcpy(v.data(), raw.data(), raw.size());
    std::vector<uint16_t> b(v.size());
    for (size_t i = 0; i < v.size(); ++i) b[i] = fp32_to_bf16(v[i]);
    bf.push_back(std::move(b));
    tb.push_back({info.name, DType::BF16, info.shape, bytes_of(bf.back())});
  }
  const stdfs::path bf_dir = t.dir / "hf_bf16";
  stdfs::create_directories(bf_dir);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) stdfs::copy_file(t.hf / f, bf_dir / f);
  write_safetensors(bf_dir / "model.safetensors", tb, {{"format", "pt"}});
  GgufExportOptions opt;
  opt.type = GgufExportType::BF16;
  export_gguf(bf_dir, t.dir / "from_bf16.gguf", opt);
  const GgufFile a = GgufFile::open(t.dir / "from_bf16.gguf"), b = GgufFile::open(t.dir / "bf16.gguf");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const GgufTensorInfo &x = a.tensors()[i], &y = b.tensors()[i];
    ASSERT_EQ(x.name, y.name);
    ASSERT_EQ(x.type, y.type);
    if (x.type == GgmlType::BF16) {
      const auto dx = a.data(x), dy = b.data(y);
      EXPECT_TRUE(std::equal(dx.begin(), dx.end(), dy.begin(), dy.end())) << x.name;
    } else {
      std::vector<float> rounded = b.dequantize(y);
      for (float& v : rounded) {
        const uint32_t bits = uint32_t{fp32_to_bf16(v)} << 16;
        std::memcpy(&v, &bits, 4);
      }
      EXPECT_EQ(a.dequantize(x), rounded) << x.name;
    }
  }
  stdfs::remove_all(t.dir);
}

TEST(GgufExport, ReadsShardedCheckpoints) {
  Tiny t = tiny("shards");
  GgufExportOptions opt;
  opt.type = GgufExportType::Q8_0;
  opt.name = "tiny";
  export_gguf(t.hf, t.dir / "single.gguf", opt);
  // The same tensors split over two shards named by an index, as transformers saves large models.
  const SafetensorsFile st = SafetensorsFile::open(t.hf / "model.safetensors");
  std::vector<TensorBytes> first, second;
  Json map = Json::object();
  for (const auto& info : st.tensors()) {
    const bool a = info.name.find("layers.1.") == std::string::npos;
    (a ? first : second).push_back({info.name, info.dtype, info.shape, st.data(info)});
    map[info.name] = a ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  const stdfs::path sharded = t.dir / "sharded";
  stdfs::create_directories(sharded);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) stdfs::copy_file(t.hf / f, sharded / f);
  write_safetensors(sharded / "model-00001-of-00002.safetensors", first, {{"format", "pt"}});
  write_safetensors(sharded / "model-00002-of-00002.safetensors", second, {{"format", "pt"}});
  write_json_file(sharded / "model.safetensors.index.json", Json{{"metadata", Json::object()}, {"weight_map", map}});
  export_gguf(sharded, t.dir / "sharded.gguf", opt);
  EXPECT_TRUE(fs::read_file(t.dir / "sharded.gguf") == fs::read_file(t.dir / "single.gguf"));
  // A shard the index names but the directory lacks is an error naming it.
  stdfs::remove(sharded / "model-00002-of-00002.safetensors");
  EXPECT_ERROR(export_gguf(sharded, t.dir / "x.gguf", opt), "model-00002-of-00002.safetensors");
  stdfs::remove_all(t.dir);
}

TEST(GgufExport, DetectsPreTokenizerNames) {
  auto tokenizer_json = [](const std::string& pre, bool ignore_merges) {
    const GgufPreTokenizer p = gguf_pre_tokenizer(pre);
    return Json{{"normalizer", p.normalizer},
                {"pre_tokenizer", p.pre_tokenizer},
                {"model", {{"type", "BPE"}, {"ignore_merges", ignore_merges}}}};
  };
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("smollm", false), "t"), "smollm");
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("starcoder", false), "t"), "smollm");  // the same splits
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("gpt2", false), "t"), "gpt2");
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("llama-bpe", true), "t"), "llama-bpe");
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("llama-bpe", false), "t"), "smaug-bpe");
  EXPECT_EQ(detect_gguf_pre_tokenizer(tokenizer_json("qwen2", false), "t"), "qwen2");
  const Json metaspace = {{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}}}};
  EXPECT_ERROR(detect_gguf_pre_tokenizer(metaspace, "dir/tokenizer.json"),
               "dir/tokenizer.json: the tokenizer.json pre-tokenizer ({\"type\":\"Metaspace\"");
  EXPECT_ERROR(detect_gguf_pre_tokenizer(metaspace, "t"), "matches no tokenizer.ggml.pre");
}

TEST(GgufExport, RejectsWhatItCannotWrite) {
  Tiny t = tiny("reject");
  const auto out = t.dir / "out.gguf";
  const Json config = read_json_file(t.hf / "config.json");
  auto with_config = [&](const std::function<void(Json&)>& edit) {
    Json c = config;
    edit(c);
    write_json_file(t.hf / "config.json", c);
    return error_of([&] { export_gguf(t.hf, out); });
  };
  EXPECT_NE(with_config([](Json& c) { c["architectures"] = {"GPT2LMHeadModel"}; })
                .find("config.json: architecture \"GPT2LMHeadModel\" is not supported"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8}}; }).find("rope scaling"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c.erase("hidden_size"); }).find("key \"hidden_size\" is missing"), std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["num_hidden_layers"] = 3; }).find("tensor \"model.layers.2.input_layernorm.weight\" is missing"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["num_hidden_layers"] = 1; })
                .find("tensor \"model.layers.1.input_layernorm.weight\" has no GGUF counterpart"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["tie_word_embeddings"] = false; }).find("tensor \"lm_head.weight\" is missing"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["intermediate_size"] = 65; })
                .find("\"model.layers.0.mlp.gate_proj.weight\" has shape [64, 32], but config.json implies [65, 32]"),
            std::string::npos);
  EXPECT_NE(with_config([](Json& c) { c["tie_word_embeddings"] = "yes"; }).find("unexpected value in a JSON file"),
            std::string::npos);
  write_json_file(t.hf / "config.json", config);
  EXPECT_ERROR(export_gguf(t.hf, out, GgufExportOptions{GgufExportType::F16, "", "no-such-pre"}),
               "tokenizer.ggml.pre \"no-such-pre\" is not supported");
  Json tj = read_json_file(t.hf / "tokenizer.json");
  tj["pre_tokenizer"] = {{"type", "Whitespace"}};
  write_json_file(t.hf / "tokenizer.json", tj);
  EXPECT_ERROR(export_gguf(t.hf, out), "tokenizer.json: the tokenizer.json pre-tokenizer");
  stdfs::remove(t.hf / "tokenizer.json");
  fs::write_file_atomic(t.hf / "tokenizer.model", "x");
  EXPECT_ERROR(export_gguf(t.hf, out), "SentencePiece tokenizer.model without tokenizer.json is not supported");
  EXPECT_FALSE(stdfs::exists(out));  // nothing written by any failed export
  EXPECT_FALSE(parse_gguf_export_type("q4_k_m"));
  EXPECT_EQ(parse_gguf_export_type("Q8_0"), GgufExportType::Q8_0);
  stdfs::remove_all(t.dir);
}

}  // namespace
}  // namespace tune::io

// GGUF reader on hand-built files (valid, malformed, truncated at every byte), dequantisation on
// hand-computed blocks, the Llama-family HF mapping and the tokenizer files. Parity with the `gguf`
// package's dequantiser and transformers' GGUF loading is in tests/parity/test_gguf.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include <unistd.h>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_hf.h"
#include "tune/text/tokenizer.h"

namespace tune::io {
namespace {

namespace stdfs = std::filesystem;
constexpr const char* kOrigin = "case.gguf";

// Builds GGUF bytes: header, metadata, tensor infos, padding, data.
class Builder {
 public:
  explicit Builder(uint32_t version = 3) : version_(version) {}

  template <class T>
  static void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
  }
  static void put_str(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
  }

  Builder& kv_raw(const std::string& key, uint32_t type, const std::string& value) {
    put_str(kv_, key);
    put<uint32_t>(kv_, type);
    kv_ += value;
    ++n_kv_;
    return *this;
  }
  Builder& kv_u32(const std::string& key, uint32_t v) {
    std::string s;
    put(s, v);
    return kv_raw(key, 4, s);
  }
  Builder& kv_f32(const std::string& key, float v) {
    std::string s;
    put(s, v);
    return kv_raw(key, 6, s);
  }
  Builder& kv_bool(const std::string& key, bool v) { return kv_raw(key, 7, std::string(1, v ? '\1' : '\0')); }
  Builder& kv_str(const std::string& key, const std::string& v) {
    std::string s;
    put_str(s, v);
    return kv_raw(key, 8, s);
  }
  Builder& kv_strs(const std::string& key, const std::vector<std::string>& items) {
    std::string s;
    put<uint32_t>(s, 8);
    put<uint64_t>(s, items.size());
    for (const auto& i : items) put_str(s, i);
    return kv_raw(key, 9, s);
  }
  Builder& kv_i32s(const std::string& key, const std::vector<int32_t>& items) {
    std::string s;
    put<uint32_t>(s, 5);
    put<uint64_t>(s, items.size());
    for (int32_t i : items) put(s, i);
    return kv_raw(key, 9, s);
  }

  // A tensor with the given GGUF dims and raw data; offset computed (aligned) unless given.
  Builder& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, std::string data,
                  std::optional<uint64_t> offset = std::nullopt) {
    uint64_t off = offset ? *offset : (data_.size() + alignment_ - 1) / alignment_ * alignment_;
    if (!offset) data_.resize(off, '\0');
    put_str(info_, name);
    put<uint32_t>(info_, dims.size());
    for (uint64_t d : dims) put<uint64_t>(info_, d);
    put<uint32_t>(info_, type);
    put<uint64_t>(info_, off);
    if (!offset) data_ += data;
    ++n_tensors_;
    return *this;
  }
  Builder& f32_tensor(const std::string& name, std::vector<uint64_t> dims, const std::vector<float>& values) {
    std::string s(values.size() * 4, '\0');
    std::memcpy(s.data(), values.data(), s.size());
    return tensor(name, std::move(dims), 0, s);
  }

  std::string bytes() const {
    std::string out = "GGUF";
    put<uint32_t>(out, version_);
    put<uint64_t>(out, n_tensors_);
    put<uint64_t>(out, n_kv_);
    out += kv_;
    out += info_;
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
    return out + data_;
  }

  uint64_t alignment_ = 32;

 private:
  uint32_t version_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
  std::string kv_, info_, data_;
};

std::span<const uint8_t> as_span(const std::string& bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

GgufFile parse_string(const std::string& bytes) { return GgufFile::parse(as_span(bytes), kOrigin); }

std::string rejection(const std::string& bytes) {
  try {
    parse_string(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_rejected(const std::string& bytes, const std::string& detail) {
  const std::string message = rejection(bytes);
  SCOPED_TRACE(message);
  ASSERT_FALSE(message.empty()) << "accepted, expected: " << detail;
  EXPECT_EQ(message.rfind(std::string(kOrigin) + ": ", 0), 0u);
  EXPECT_NE(message.find(detail), std::string::npos);
}

std::string u16s(std::initializer_list<uint16_t> v) {
  std::string s;
  for (uint16_t x : v) Builder::put(s, x);
  return s;
}

TEST(Gguf, ReadsMetadataOfEveryTypeAndTensors) {
  Builder b;
  std::string nested;  // ARRAY of 2 ARRAY of UINT8: [[1, 2], [3]]
  Builder::put<uint32_t>(nested, 9);
  Builder::put<uint64_t>(nested, 2);
  Builder::put<uint32_t>(nested, 0);
  Builder::put<uint64_t>(nested, 2);
  nested += "\x01\x02";
  Builder::put<uint32_t>(nested, 0);
  Builder::put<uint64_t>(nested, 1);
  nested += "\x03";
  std::string i8 = "\xff", i16, u64, i64, f64;
  Builder::put<int16_t>(i16, -300);
  Builder::put<uint64_t>(u64, 1ull << 40);
  Builder::put<int64_t>(i64, -5);
  Builder::put<double>(f64, 0.125);
  b.kv_str("general.architecture", "llama")
      .kv_u32("a.u32", 7)
      .kv_raw("a.i8", 1, i8)
      .kv_raw("a.i16", 3, i16)
      .kv_raw("a.u64", 10, u64)
      .kv_raw("a.i64", 11, i64)
      .kv_raw("a.f64", 12, f64)
      .kv_f32("a.f32", 1.5f)
      .kv_bool("a.bool", true)
      .kv_strs("a.strs", {"x", "", "zz"})
      .kv_raw("a.nested", 9, nested)
      .f32_tensor("w", {3, 2}, {1, 2, 3, 4, 5, 6})
      .tensor("h", {4}, 1, u16s({0x3C00, 0xC000, 0x0001, 0x7C00}));
  const std::string bytes = b.bytes();
  GgufFile f = parse_string(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("a.u32"), 7u);
  EXPECT_EQ(f.get_int("a.i8"), -1);
  EXPECT_EQ(f.get_int("a.i16"), -300);
  EXPECT_EQ(f.get_uint("a.u64"), 1ull << 40);
  EXPECT_EQ(f.get_int("a.i64"), -5);
  EXPECT_EQ(f.get_float("a.f64"), 0.125);
  EXPECT_EQ(f.get_float("a.f32"), 1.5);
  EXPECT_EQ(f.get_bool("a.bool"), true);
  EXPECT_EQ(f.get_strings("a.strs"), (std::vector<std::string>{"x", "", "zz"}));
  const GgufValue* n = f.find("a.nested");
  ASSERT_TRUE(n && n->is_array());
  EXPECT_EQ(n->element_type(), GgufValueType::ARRAY);
  ASSERT_EQ(n->as_array()->size(), 2u);
  EXPECT_EQ((*n->as_array())[1].as_array()->at(0).as_uint(), 3u);
  EXPECT_EQ(f.metadata_order().front(), "general.architecture");
  EXPECT_FALSE(f.get_uint("absent"));
  // A present key of another type names the file and key.
  try {
    f.get_uint("a.strs");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("case.gguf: GGUF metadata key \"a.strs\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_uint("a.i8"), Error);  // negative

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo* w = f.find_tensor("w");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->dims, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(w->shape(), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(w->nbytes, 24u);
  EXPECT_EQ(f.dequantize(*w), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const auto h = f.dequantize(*f.find_tensor("h"));
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], std::ldexp(1.0f, -24));  // the smallest subnormal half
  EXPECT_TRUE(std::isinf(h[3]));
  EXPECT_EQ(f.data_offset() % 32, 0u);
}

TEST(Gguf, AcceptsVersion2AndCustomAlignment) {
  Builder b(2);
  b.alignment_ = 64;
  b.kv_u32("general.alignment", 64).f32_tensor("a", {1}, {1}).f32_tensor("b", {2}, {2, 3});
  GgufFile f = parse_string(b.bytes());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);
  EXPECT_EQ(f.dequantize(*f.find_tensor("b")), (std::vector<float>{2, 3}));
}

TEST(Gguf, RejectsMalformedHeaders) {
  const std::string good = Builder().kv_u32("k", 1).f32_tensor("t", {2}, {1, 2}).bytes();
  std::string bad = good;
  bad[0] = 'X';
  expect_rejected(bad, "bad magic \"XGUF\"");
  bad = good;
  bad[4] = 1;
  expect_rejected(bad, "GGUF version 1");
  bad = good;
  bad[4] = 4;
  expect_rejected(bad, "unsupported GGUF version 4");
  bad = good;
  bad[4] = 0, bad[7] = 3;
  expect_rejected(bad, "big-endian");
  bad = good;
  bad[16] = '\x7f';  // kv count huge
  expect_rejected(bad, "metadata count");
  bad = good;
  bad[8] = '\x7f';  // tensor count huge
  expect_rejected(bad, "tensor count");
  expect_rejected("", "file is truncated: the magic");
}

TEST(Gguf, RejectsMalformedMetadata) {
  // String length past the end.
  std::string huge;
  Builder::put<uint64_t>(huge, 1ull << 62);
  expect_rejected(Builder().kv_raw("k", 8, huge).bytes(), "metadata key \"k\": string length 4611686018427387904 runs past");
  // Array length past the end, before anything is allocated.
  std::string arr;
  Builder::put<uint32_t>(arr, 4);
  Builder::put<uint64_t>(arr, 1ull << 60);
  expect_rejected(Builder().kv_raw("k", 9, arr).bytes(), "metadata key \"k\": array length 1152921504606846976 exceeds");
  std::string arr2;
  Builder::put<uint32_t>(arr2, 4);
  Builder::put<uint64_t>(arr2, 1000);
  expect_rejected(Builder().kv_raw("k", 9, arr2).bytes(), "metadata key \"k\": array length 1000 of UINT32");
  expect_rejected(Builder().kv_raw("k", 13, "").bytes(), "metadata key \"k\" (value type): unknown value type 13");
  expect_rejected(Builder().kv_raw("k", 7, "\x02").bytes(), "BOOL value 2");
  expect_rejected(Builder().kv_u32("k", 1).kv_u32("k", 2).bytes(), "duplicate metadata key \"k\"");
  // Nested arrays beyond the depth limit.
  std::string deep;
  for (int i = 0; i < 9; ++i) {
    Builder::put<uint32_t>(deep, 9);
    Builder::put<uint64_t>(deep, 1);
  }
  Builder::put<uint32_t>(deep, 0);
  Builder::put<uint64_t>(deep, 0);
  expect_rejected(Builder().kv_raw("k", 9, deep).bytes(), "nested deeper than 8");
  // general.alignment must be a UINT32 power of two.
  expect_rejected(Builder().kv_u32("general.alignment", 24).bytes(), "general.alignment");
  expect_rejected(Builder().kv_str("general.alignment", "32").bytes(), "general.alignment");
}

TEST(Gguf, RejectsMalformedTensors) {
  const std::string f32x2(8, '\0');
  expect_rejected(Builder().tensor("t", {1, 1, 1, 1, 1}, 0, "").bytes(), "tensor \"t\": 5 dimensions");
  expect_rejected(Builder().tensor("t", {1ull << 32, 1ull << 32}, 0, "").bytes(), "overflows int64");
  expect_rejected(Builder().tensor("t", {1ull << 63}, 0, "").bytes(), "beyond int64");
  expect_rejected(Builder().tensor("t", {2}, 4, f32x2).bytes(), "tensor \"t\": unknown ggml type 4");
  expect_rejected(Builder().tensor("t", {2}, 99, f32x2).bytes(), "unknown ggml type 99");
  expect_rejected(Builder().tensor("t", {16}, 2, std::string(18, '\0')).bytes(),
                  "rows of 16 elements are not a multiple of the Q4_0 block size 32");
  expect_rejected(Builder().tensor("t", {2}, 0, f32x2, 4).bytes(), "data offset 4 is not a multiple of the alignment 32");
  expect_rejected(Builder().tensor("t", {2}, 0, f32x2, 4096).bytes(), "file is truncated: tensor \"t\"");
  expect_rejected(Builder().tensor("t", {2}, 0, f32x2).tensor("t", {2}, 0, f32x2).bytes(), "duplicate tensor \"t\"");
  expect_rejected(Builder().tensor("a", {16}, 0, std::string(64, '\0')).tensor("b", {2}, 0, f32x2, 32).bytes(),
                  "tensor \"b\" at data offset 32 overlaps tensor \"a\"");
  expect_rejected(Builder().tensor(std::string(64, 'n'), {2}, 0, f32x2).bytes(), "longer than ggml's limit of 63");
}

TEST(Gguf, EveryTruncationIsRejectedCleanly) {
  const std::string good = Builder()
                               .kv_str("general.architecture", "llama")
                               .kv_strs("tokens", {"a", "bc"})
                               .kv_f32("x", 2)
                               .f32_tensor("w", {4}, {1, 2, 3, 4})
                               .tensor("q", {32}, 8, std::string(34, '\x01'))
                               .bytes();
  ASSERT_NO_THROW(parse_string(good));
  for (size_t n = 0; n < good.size(); ++n) {
    const std::string cut = good.substr(0, n);
    // The last tensor's data ends at the end of the file; any shorter prefix must be rejected.
    EXPECT_FALSE(rejection(cut).empty()) << "accepted a prefix of " << n << " bytes";
  }
  // Random byte flips: accepted or a tune::Error, never anything else.
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    try {
      GgufFile f = parse_string(bad);
      for (const auto& t : f.tensors())
        if (ggml_traits(t.type).dequantizable) f.dequantize(t);
    } catch (const Error&) {
    }
  }
}

// Files written by the gguf package's GGUFWriter (the fuzz seeds, tests/fuzz/make_gguf_corpus.py).
TEST(Gguf, ReadsFilesOfTheGgufPackagesWriter) {
  const stdfs::path dir = stdfs::path(TUNE_SOURCE_DIR) / "tests/fuzz/corpus/gguf";
  int valid = 0;
  for (const auto& entry : stdfs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    if (name.rfind("bad_", 0) == 0) {
      EXPECT_THROW(GgufFile::open(entry.path()), Error);
      continue;
    }
    GgufFile f = GgufFile::open(entry.path());
    for (const auto& t : f.tensors()) EXPECT_EQ(f.dequantize(t).size(), t.numel());
    ++valid;
  }
  EXPECT_GE(valid, 5);
  GgufFile f = GgufFile::open(dir / "valid_tiny_llama");
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(gguf_hf_config(f)["hidden_size"], 32);
  EXPECT_EQ(gguf_hf_tensors(f).size(), 11u);
  const GgufFile values = GgufFile::open(dir / "valid_value_types");
  EXPECT_EQ(values.get_int("a.i16"), -2);
  EXPECT_EQ(values.get_float("a.f64"), 0.25);
  EXPECT_EQ(values.find("a.nested")->describe(), "[ARRAY x 2: [INT32 x 2: 1 2] [INT32 x 1: 3]]");
  EXPECT_EQ(GgufFile::open(dir / "valid_tiny_llama_v2").version(), 2u);
  EXPECT_EQ(GgufFile::open(dir / "valid_tiny_llama_align64").alignment(), 64u);
}

// ---- dequantisation on hand-computed blocks ------------------------------------------------------

TEST(GgufDequant, LegacyTypesByHand) {
  // Q8_0: d = 0.5 (half 0x3800), q = -3, 0, 4, ...
  std::string q8 = u16s({0x3800});
  for (int j = 0; j < 32; ++j) q8 += static_cast<char>(j - 16);
  std::vector<float> out(32);
  dequantize(GgmlType::Q8_0, as_span(q8), out);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16));
  // Q4_0: d = 2, byte j = (low j % 16, high 15 - j % 16): x[j] = 2 (low - 8), x[j + 16] = 2 (high - 8).
  std::string q4 = u16s({0x4000});
  for (int j = 0; j < 16; ++j) q4 += static_cast<char>((j & 0xF) | ((15 - j) << 4));
  dequantize(GgmlType::Q4_0, as_span(q4), out);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (j - 8));
    EXPECT_EQ(out[j + 16], 2.0f * (15 - j - 8));
  }
  // Q4_1: d = 1, m = -1: x = q - 1.
  std::string q41 = u16s({0x3C00, 0xBC00});
  for (int j = 0; j < 16; ++j) q41 += static_cast<char>(j | (j << 4));
  dequantize(GgmlType::Q4_1, as_span(q41), out);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(out[j], j - 1.0f);
  // Q5_0: all fifth bits set: q = nibble | 16, x = d (q - 16) = nibble.
  std::string q5 = u16s({0x3C00}) + std::string(4, '\xff');
  for (int j = 0; j < 16; ++j) q5 += static_cast<char>(j | (j << 4));
  dequantize(GgmlType::Q5_0, as_span(q5), out);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(out[j], static_cast<float>(j));
  // Q8_K: float d = 0.25, q = j - 128.
  std::string q8k;
  Builder::put<float>(q8k, 0.25f);
  for (int j = 0; j < 256; ++j) q8k += static_cast<char>(j - 128);
  q8k += std::string(32, '\0');
  std::vector<float> out256(256);
  dequantize(GgmlType::Q8_K, as_span(q8k), out256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(out256[j], 0.25f * (j - 128));
  // BF16: the high half of a float.
  std::vector<float> bf(2);
  dequantize(GgmlType::BF16, as_span(u16s({0x3F80, 0xC040})), bf);
  EXPECT_EQ(bf, (std::vector<float>{1.0f, -3.0f}));
}

TEST(GgufDequant, Q6KAndQ4KByHand) {
  // Q6_K with d = 1 and scale s for sub-block s: ql = 0x21 (low 1, high 2), qh = 0 -> q = 1 - 32 or 2 - 32.
  std::string q6(128, '\x21');
  q6 += std::string(64, '\0');
  for (int s = 0; s < 16; ++s) q6 += static_cast<char>(s + 1);
  q6 += u16s({0x3C00});
  std::vector<float> out(256);
  dequantize(GgmlType::Q6_K, as_span(q6), out);
  for (int i = 0; i < 256; ++i) {
    const int h = i / 128, s = (i % 128) / 32, l = i % 32;
    const int q = (s < 2 ? 1 : 2) - 32;
    EXPECT_EQ(out[i], static_cast<float>((8 * h + 2 * s + l / 16) + 1) * q) << i;
  }
  // Q4_K: d = 1, dmin = 1, scales j < 4: sc = j + 1, min = 1; j >= 4 from the packed bytes.
  std::string q4 = u16s({0x3C00, 0x3C00});
  uint8_t sc[12] = {1, 2, 3, 4, 1, 1, 1, 1, 0x15, 0x26, 0x37, 0x48};  // j>=4: sc = 5..8 (low nibble), m = 1..4
  q4.append(reinterpret_cast<const char*>(sc), 12);
  q4 += std::string(128, '\x73');  // low nibble 3, high nibble 7
  dequantize(GgmlType::Q4_K, as_span(q4), out);
  for (int j = 0; j < 8; ++j) {
    const float scale = static_cast<float>(j + 1), min = j < 4 ? 1.0f : static_cast<float>(j - 3);
    const float q = j % 2 == 0 ? 3.0f : 7.0f;
    for (int l = 0; l < 32; ++l) EXPECT_EQ(out[32 * j + l], scale * q - min) << j;
  }
}

TEST(GgufDequant, RejectsWrongSizesAndTypes) {
  std::vector<float> out(32);
  EXPECT_THROW(dequantize(GgmlType::Q8_0, as_span(std::string(33, '\0')), out), Error);
  std::vector<float> odd(31);
  EXPECT_THROW(dequantize(GgmlType::Q8_0, as_span(std::string(34, '\0')), odd), Error);
  EXPECT_THROW(dequantize(GgmlType::IQ2_XXS, as_span(std::string(66, '\0')), std::span<float>(out.data(), 256 / 8)),
               Error);
}

// ---- Llama-family mapping ------------------------------------------------------------------------

// The forward permutation of convert_hf_to_gguf.py (LlamaModel.permute), written independently.
std::vector<float> permute(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t k = 0; k < 2; ++k)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t c = 0; c < cols; ++c)
          out[(h * hd + 2 * i + k) * cols + c] = w[(h * hd + k * half + i) * cols + c];
  return out;
}

TEST(GgufHf, UnpermuteInvertsLlamaCppsPermutation) {
  const int64_t rows = 24, cols = 5, heads = 3;
  std::vector<float> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  std::vector<float> p = permute(w, rows, cols, heads);
  EXPECT_NE(p, w);
  unpermute_rotary_rows(p, rows, cols, heads);
  EXPECT_EQ(p, w);
  EXPECT_THROW(unpermute_rotary_rows(p, rows, cols, 5), Error);
}

// A tiny llama-arch GGUF: D = 8, 2 heads (hd 4), 1 KV head, I = 12, 2 layers, vocab of byte tokens.
struct TinyModel {
  Builder b;
  std::vector<std::string> tokens;
  std::map<std::string, std::vector<float>> hf;  // expected HF tensors
};

std::vector<float> iota(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i) * 0.25f;
  return v;
}

TinyModel tiny_model(bool tied, const std::string& pre = "smollm", const std::string& arch = "llama") {
  TinyModel m;
  // Byte-level tokens: the 3 specials, the printable ASCII bytes mapped as GPT-2 does (space = Ġ),
  // and merges "Ġ t", "h e".
  m.tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (int c = 33; c < 127; ++c) m.tokens.push_back(std::string(1, static_cast<char>(c)));
  m.tokens.push_back("\xc4\xa0");  // Ġ
  m.tokens.push_back("\xc4\x8a");  // Ċ
  m.tokens.push_back("\xc4\xa0t");
  m.tokens.push_back("he");
  std::vector<int32_t> types(m.tokens.size(), 1);
  types[0] = types[1] = types[2] = 3;
  const uint64_t V = m.tokens.size(), D = 8, I = 12, H = 2, KV = 1, hd = 4;
  m.b.kv_str("general.architecture", arch)
      .kv_u32(arch + ".block_count", 2)
      .kv_u32(arch + ".context_length", 256)
      .kv_u32(arch + ".embedding_length", D)
      .kv_u32(arch + ".feed_forward_length", I)
      .kv_u32(arch + ".attention.head_count", H)
      .kv_u32(arch + ".attention.head_count_kv", KV)
      .kv_f32(arch + ".rope.freq_base", 100000.0f)
      .kv_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f)
      .kv_u32(arch + ".rope.dimension_count", hd)
      .kv_str("tokenizer.ggml.model", "gpt2")
      .kv_str("tokenizer.ggml.pre", pre)
      .kv_strs("tokenizer.ggml.tokens", m.tokens)
      .kv_i32s("tokenizer.ggml.token_type", types)
      .kv_strs("tokenizer.ggml.merges", {"\xc4\xa0 t", "h e"})
      .kv_u32("tokenizer.ggml.bos_token_id", 1)
      .kv_u32("tokenizer.ggml.eos_token_id", 2)
      .kv_u32("tokenizer.ggml.padding_token_id", 2)
      .kv_bool("tokenizer.ggml.add_bos_token", false)
      .kv_str("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  float start = 0;
  const bool permuted = arch == "llama";  // convert_hf_to_gguf.py permutes Q/K for LlamaModel only
  auto add = [&](const std::string& gguf, const std::string& hf, std::vector<uint64_t> hf_shape, int64_t heads) {
    if (!permuted) heads = 0;
    size_t n = 1;
    for (auto d : hf_shape) n *= d;
    std::vector<float> values = iota(n, start);
    start += 100;
    m.hf[hf] = values;
    std::vector<float> stored = heads ? permute(values, hf_shape[0], hf_shape.size() > 1 ? hf_shape[1] : 1, heads) : values;
    m.b.f32_tensor(gguf, {hf_shape.rbegin(), hf_shape.rend()}, stored);
  };
  add("token_embd.weight", "model.embed_tokens.weight", {V, D}, 0);
  for (int l = 0; l < 2; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    add(g + "attn_norm.weight", h + "input_layernorm.weight", {D}, 0);
    add(g + "attn_q.weight", h + "self_attn.q_proj.weight", {H * hd, D}, H);
    add(g + "attn_k.weight", h + "self_attn.k_proj.weight", {KV * hd, D}, KV);
    add(g + "attn_v.weight", h + "self_attn.v_proj.weight", {KV * hd, D}, 0);
    if (arch == "qwen2") {
      add(g + "attn_q.bias", h + "self_attn.q_proj.bias", {H * hd}, H);
      add(g + "attn_k.bias", h + "self_attn.k_proj.bias", {KV * hd}, KV);
      add(g + "attn_v.bias", h + "self_attn.v_proj.bias", {KV * hd}, 0);
    }
    add(g + "attn_output.weight", h + "self_attn.o_proj.weight", {D, H * hd}, 0);
    add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {D}, 0);
    add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {I, D}, 0);
    add(g + "ffn_up.weight", h + "mlp.up_proj.weight", {I, D}, 0);
    add(g + "ffn_down.weight", h + "mlp.down_proj.weight", {D, I}, 0);
  }
  add("output_norm.weight", "model.norm.weight", {D}, 0);
  if (!tied) add("output.weight", "lm_head.weight", {V, D}, 0);
  return m;
}

TEST(GgufHf, ConfigFromLlamaMetadata) {
  TinyModel m = tiny_model(true);
  const std::string bytes = m.b.bytes();
  GgufFile f = parse_string(bytes);
  const Json c = gguf_hf_config(f);
  EXPECT_EQ(c["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["hidden_size"], 8);
  EXPECT_EQ(c["intermediate_size"], 12);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["num_attention_heads"], 2);
  EXPECT_EQ(c["num_key_value_heads"], 1);
  EXPECT_EQ(c["head_dim"], 4);
  EXPECT_EQ(c["rope_theta"], 100000.0);
  EXPECT_EQ(c["rms_norm_eps"], static_cast<double>(1e-5f));
  EXPECT_EQ(c["max_position_embeddings"], 256);
  EXPECT_EQ(c["vocab_size"], m.tokens.size());
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);
  const std::string untied = tiny_model(false).b.bytes();
  EXPECT_EQ(gguf_hf_config(parse_string(untied))["tie_word_embeddings"], false);
}

TEST(GgufHf, TensorsUnderHfNamesWithRowOrderUndone) {
  for (bool tied : {true, false}) {
    TinyModel m = tiny_model(tied);
    const std::string bytes = m.b.bytes();
    GgufFile f = parse_string(bytes);
    const auto tensors = gguf_hf_tensors(f);
    EXPECT_EQ(tensors.size(), m.hf.size());
    for (const auto& t : tensors) {
      SCOPED_TRACE(t.hf_name);
      ASSERT_TRUE(m.hf.count(t.hf_name));
      EXPECT_EQ(gguf_hf_tensor_data(f, t), m.hf[t.hf_name]);
    }
    EXPECT_EQ(tensors[0].hf_name, "model.embed_tokens.weight");
    EXPECT_EQ(tensors[0].shape, (std::vector<int64_t>{static_cast<int64_t>(m.tokens.size()), 8}));
  }
}

// qwen2: HF row order kept (no permutation), q/k/v biases, Qwen2 config.
TEST(GgufHf, Qwen2KeepsRowOrderAndBiases) {
  TinyModel m = tiny_model(false, "qwen2", "qwen2");
  const std::string bytes = m.b.bytes();
  GgufFile f = parse_string(bytes);
  const Json c = gguf_hf_config(f);
  EXPECT_EQ(c["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(c["model_type"], "qwen2");
  EXPECT_EQ(c["use_sliding_window"], false);
  const auto tensors = gguf_hf_tensors(f);
  EXPECT_EQ(tensors.size(), m.hf.size());
  int biases = 0;
  for (const auto& t : tensors) {
    SCOPED_TRACE(t.hf_name);
    EXPECT_EQ(t.unpermute_heads, 0);
    EXPECT_EQ(gguf_hf_tensor_data(f, t), m.hf.at(t.hf_name));
    biases += t.hf_name.ends_with(".bias");
  }
  EXPECT_EQ(biases, 6);
  EXPECT_EQ(gguf_hf_tokenizer(f).tokenizer["normalizer"]["type"], "NFC");
}

TEST(GgufHf, RejectsWhatItCannotMap) {
  {
    TinyModel m = tiny_model(true);
    m.b.f32_tensor("blk.0.attn_foo.weight", {8}, iota(8, 0));
    const std::string bytes = m.b.bytes();
    try {
      gguf_hf_tensors(parse_string(bytes));
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor \"blk.0.attn_foo.weight\" has no Hugging Face counterpart"),
                std::string::npos)
          << e.what();
    }
  }
  {
    Builder b;
    b.kv_str("general.architecture", "gemma");
    const std::string bytes = b.bytes();
    EXPECT_THROW(gguf_hf_config(parse_string(bytes)), Error);
  }
  {
    TinyModel m = tiny_model(true);
    m.b.kv_str("llama.rope.scaling.type", "yarn");
    const std::string bytes = m.b.bytes();
    EXPECT_THROW(gguf_hf_config(parse_string(bytes)), Error);
  }
}

// ---- tokenizer files -----------------------------------------------------------------------------

TEST(GgufTokenizer, FilesLoadInOurTokenizerAndSplitDigits) {
  TinyModel m = tiny_model(true);
  const std::string bytes = m.b.bytes();
  GgufFile f = parse_string(bytes);
  const stdfs::path dir = stdfs::temp_directory_path() / ("tune_gguf_tok_" + std::to_string(::getpid()));
  write_gguf_hf_metadata(f, dir);
  const Json tc = read_json_file(dir / "tokenizer_config.json");
  EXPECT_EQ(tc["bos_token"], "<|im_start|>");
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");
  EXPECT_EQ(tc["add_bos_token"], false);
  EXPECT_EQ(tc["chat_template"], "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  const Json gc = read_json_file(dir / "generation_config.json");
  EXPECT_EQ(gc["eos_token_id"], 2);
  EXPECT_EQ(gc["bos_token_id"], 1);
  auto tok = text::Tokenizer::load(dir);
  auto id = [&](const std::string& t) { return *tok->token_to_id(t); };
  // " the": "Ġt" merges first, "h e" next: [Ġt, he]. "123" splits into single digits.
  EXPECT_EQ(tok->encode(" the"), (std::vector<int32_t>{id("\xc4\xa0t"), id("he")}));
  EXPECT_EQ(tok->encode("123"), (std::vector<int32_t>{id("1"), id("2"), id("3")}));
  EXPECT_EQ(tok->encode("<|im_start|>x<|im_end|>"), (std::vector<int32_t>{1, id("x"), 2}));
  EXPECT_TRUE(tok->is_special(2));
  EXPECT_EQ(tok->decode(tok->encode(" the 42!")), " the 42!");
  stdfs::remove_all(dir);
}

// A SentencePiece-style vocabulary (tokenizer.ggml.model llama) becomes a tokenizer.model.
TEST(GgufTokenizer, SentencePieceVocabularyAsTokenizerModel) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::string scores;
  for (int i = 0; i < 3; ++i) Builder::put<float>(scores, 0.0f);
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    tokens.push_back(hex);
    types.push_back(6);
    Builder::put<float>(scores, 0.0f);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"\xe2\x96\x81", -1}, {"a", -2}, {"b", -3}, {"\xe2\x96\x81" "a", -4}, {"ab", -1.5f}, {"\xe2\x96\x81" "ab", -5}};
  for (const auto& [text, score] : pieces) {
    tokens.push_back(text);
    types.push_back(1);
    Builder::put<float>(scores, score);
  }
  std::string score_array;
  Builder::put<uint32_t>(score_array, 6);
  Builder::put<uint64_t>(score_array, tokens.size());
  score_array += scores;
  Builder b;
  b.kv_str("tokenizer.ggml.model", "llama")
      .kv_strs("tokenizer.ggml.tokens", tokens)
      .kv_raw("tokenizer.ggml.scores", 9, score_array)
      .kv_i32s("tokenizer.ggml.token_type", types)
      .kv_u32("tokenizer.ggml.bos_token_id", 1)
      .kv_u32("tokenizer.ggml.eos_token_id", 2)
      .kv_u32("tokenizer.ggml.unknown_token_id", 0);
  const std::string bytes = b.bytes();
  GgufFile f = parse_string(bytes);
  const stdfs::path dir = stdfs::temp_directory_path() / ("tune_gguf_spm_" + std::to_string(::getpid()));
  write_gguf_hf_tokenizer(f, dir);
  EXPECT_TRUE(stdfs::exists(dir / "tokenizer.model"));
  EXPECT_FALSE(stdfs::exists(dir / "tokenizer.json"));
  const Json tc = read_json_file(dir / "tokenizer_config.json");
  EXPECT_EQ(tc["add_bos_token"], true);  // llama.cpp's default for SentencePiece vocabularies
  EXPECT_EQ(tc["tokenizer_class"], "LlamaTokenizer");
  auto tok = text::Tokenizer::load(dir);
  const int32_t base = 3 + 256;
  // "ab ab": "▁ab" is reached through "ab" (score -1.5, merged first) then "▁"+"ab"; "c" falls back
  // to its byte piece <0x63>.
  EXPECT_EQ(tok->encode("ab abc"), (std::vector<int32_t>{base + 5, base + 5, 3 + 0x63}));
  EXPECT_EQ(tok->encode("ab", true), (std::vector<int32_t>{1, base + 5}));
  EXPECT_EQ(tok->decode(tok->encode("ab abc")), "ab abc");
  stdfs::remove_all(dir);
}

TEST(GgufTokenizer, PreTokenizerNames) {
  EXPECT_EQ(gguf_pre_tokenizer("smollm").pre_tokenizer["pretokenizers"][0]["type"], "Digits");
  EXPECT_EQ(gguf_pre_tokenizer("gpt2").pre_tokenizer["type"], "ByteLevel");
  EXPECT_TRUE(gguf_pre_tokenizer("llama-bpe").ignore_merges);
  EXPECT_EQ(gguf_pre_tokenizer("qwen2").normalizer["type"], "NFC");
  EXPECT_THROW(gguf_pre_tokenizer("deepseek-llm"), Error);
  TinyModel m = tiny_model(true, "no-such-pre");
  const std::string bytes = m.b.bytes();
  try {
    gguf_hf_tokenizer(parse_string(bytes));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("case.gguf: GGUF tokenizer.ggml.pre \"no-such-pre\" is not supported"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tune::io

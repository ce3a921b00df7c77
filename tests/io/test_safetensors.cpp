// safetensors reader/writer against the Python reference library (fixtures written by
// tests/io/data/make_fixtures.py with safetensors.torch.save_file) and hand-built malformed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

namespace stdfs = std::filesystem;

const stdfs::path kData = stdfs::path(TUNE_SOURCE_DIR) / "tests/io/data";
constexpr const char* kOrigin = "case.safetensors";

std::string u64_le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// Length prefix + header + data, the prefix computed from the header unless given.
std::string file_bytes(const std::string& header, const std::string& data = "") {
  return u64_le(header.size()) + header + data;
}

std::span<const uint8_t> as_span(const std::string& bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

SafetensorsFile parse_string(const std::string& bytes) { return SafetensorsFile::parse(as_span(bytes), kOrigin); }

// The error message parse() gives, or "" when the bytes are accepted.
std::string rejection(const std::string& bytes) {
  try {
    parse_string(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every rejection names the file, the problem and the reference library's error for it.
void expect_rejected(const std::string& bytes, const std::string& code, const std::string& detail) {
  std::string message = rejection(bytes);
  SCOPED_TRACE(message);
  ASSERT_FALSE(message.empty()) << "accepted, expected " << code;
  EXPECT_EQ(message.rfind(std::string(kOrigin) + ": invalid safetensors file: ", 0), 0u);
  EXPECT_NE(message.find("(" + code + ")"), std::string::npos);
  EXPECT_NE(message.find(detail), std::string::npos);
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

stdfs::path scratch_dir(const std::string& name) {
  auto dir = stdfs::temp_directory_path() / ("tune_st_" + name + "_" + std::to_string(::getpid()));
  stdfs::remove_all(dir);
  stdfs::create_directories(dir);
  return dir;
}

// ---- value decoding for the fixture comparison (little-endian, as the format stores them) ----

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  double v = exp == 0 ? std::ldexp(mant, -24) : exp == 31 ? (mant ? NAN : INFINITY) : std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

double e4m3fn_to_double(uint8_t b) {
  const int sign = b >> 7, exp = (b >> 3) & 0xF, mant = b & 0x7;
  double v = (exp == 15 && mant == 7) ? NAN : exp == 0 ? std::ldexp(mant, -9) : std::ldexp(8 + mant, exp - 10);
  return sign ? -v : v;
}

// Element i of a tensor as a double (floats) or an integer held in a double-free int64 path.
struct Value {
  bool is_float;
  double f;
  int64_t i;
};

Value element(DType dtype, std::span<const uint8_t> bytes, size_t i) {
  const size_t width = dtype_bits(dtype) / 8;
  const uint8_t* p = bytes.data() + i * width;
  switch (dtype) {
    case DType::F64: return {true, load<double>(p), 0};
    case DType::F32: return {true, load<float>(p), 0};
    case DType::BF16: return {true, std::bit_cast<float>(uint32_t{load<uint16_t>(p)} << 16), 0};
    case DType::F16: return {true, half_to_double(load<uint16_t>(p)), 0};
    case DType::F8_E5M2: return {true, half_to_double(uint16_t(*p) << 8), 0};  // the top byte of an F16
    case DType::F8_E4M3: return {true, e4m3fn_to_double(*p), 0};
    case DType::I64: return {false, 0, load<int64_t>(p)};
    case DType::U64: return {false, 0, static_cast<int64_t>(load<uint64_t>(p))};
    case DType::I32: return {false, 0, load<int32_t>(p)};
    case DType::U32: return {false, 0, load<uint32_t>(p)};
    case DType::I16: return {false, 0, load<int16_t>(p)};
    case DType::U16: return {false, 0, load<uint16_t>(p)};
    case DType::I8: return {false, 0, load<int8_t>(p)};
    case DType::U8:
    case DType::BOOL: return {false, 0, *p};
    default: ADD_FAILURE() << "no decoder for " << dtype_name(dtype); return {false, 0, 0};
  }
}

const std::vector<std::string> kFixtures = {"mixed.safetensors", "no_metadata.safetensors", "escapes.safetensors",
                                            "empty.safetensors"};

// ---- reference fixtures ----

TEST(Safetensors, ReaderMatchesReferenceListing) {
  Json listing = read_json_file(kData / "fixtures.json");
  for (const auto& name : kFixtures) {
    SCOPED_TRACE(name);
    const Json& expected = listing.at("files").at(name);
    auto file = SafetensorsFile::open(kData / name);
    EXPECT_EQ(file.origin(), (kData / name).string());

    std::map<std::string, std::string> metadata;
    if (!expected.at("metadata").is_null())
      for (auto& [k, v] : expected.at("metadata").items()) metadata[k] = v.get<std::string>();
    EXPECT_EQ(file.metadata(), metadata);

    const Json& tensors = expected.at("tensors");  // listed by name, like tensors()
    ASSERT_EQ(file.tensors().size(), tensors.size());
    for (size_t t = 0; t < tensors.size(); ++t) {
      const TensorInfo& info = file.tensors()[t];
      const Json& want = tensors[t];
      SCOPED_TRACE(info.name);
      EXPECT_EQ(info.name, want.at("name").get<std::string>());
      EXPECT_EQ(dtype_name(info.dtype), want.at("dtype").get<std::string>());
      EXPECT_EQ(info.shape, want.at("shape").get<std::vector<uint64_t>>());
      EXPECT_EQ(file.find(info.name), &info);
      auto bytes = file.data(info);
      ASSERT_EQ(bytes.size() * 8, info.numel() * dtype_bits(info.dtype));
      const Json& values = want.at("values");
      ASSERT_EQ(values.size(), info.numel());
      for (size_t i = 0; i < values.size(); ++i) {
        Value v = element(info.dtype, bytes, i);
        if (v.is_float)
          EXPECT_EQ(v.f, values[i].get<double>()) << "element " << i;
        else
          EXPECT_EQ(v.i, values[i].get<int64_t>()) << "element " << i;
      }
    }
  }
}

TEST(Safetensors, WriterIsByteIdenticalToReference) {
  auto dir = scratch_dir("identity");
  for (const auto& name : kFixtures) {
    SCOPED_TRACE(name);
    const std::string reference = fs::read_file(kData / name);
    auto file = SafetensorsFile::open(kData / name);
    std::vector<TensorBytes> tensors;
    for (const auto& info : file.tensors()) tensors.push_back({info.name, info.dtype, info.shape, file.data(info)});
    // The layout must not depend on the order the caller lists tensors in.
    std::shuffle(tensors.begin(), tensors.end(), std::mt19937(7));

    EXPECT_EQ(serialize_safetensors(tensors, file.metadata()), reference);
    write_safetensors(dir / name, tensors, file.metadata());
    EXPECT_EQ(fs::read_file(dir / name), reference);
  }
  // Only the finished files remain: the temporary names were renamed away.
  EXPECT_EQ(std::distance(stdfs::directory_iterator(dir), stdfs::directory_iterator()), (long)kFixtures.size());
  stdfs::remove_all(dir);
}

TEST(Safetensors, WriterOrdersDtypesLikeTheReference) {
  // The order safetensors 0.8 wrote one tensor of each dtype it can build in (descending), with
  // the F6 types (which it cannot build from Python) placed by its Rust enum.
  const std::vector<std::string> reference_order = {
      "U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16", "F8_E5M2FNUZ",
      "F8_E4M3FNUZ", "F8_E8M0", "F8_E4M3", "F8_E5M2", "I8", "U8", "F6_E3M2", "F6_E2M3", "F4", "BOOL"};
  std::vector<std::string> storage;
  std::vector<TensorBytes> tensors;
  storage.reserve(reference_order.size());
  for (const auto& name : reference_order) {
    DType dtype = *parse_dtype(name);
    storage.emplace_back(dtype_bits(dtype), '\0');  // 8 elements -> bits bytes
    tensors.push_back({"t", dtype, {8}, as_span(storage.back())});
    tensors.back().name = "t_" + name;
  }
  std::reverse(tensors.begin(), tensors.end());
  auto file = parse_string(serialize_safetensors(tensors, {}));
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : file.tensors()) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  std::vector<std::string> got;
  for (auto* t : by_offset) got.emplace_back(dtype_name(t->dtype));
  EXPECT_EQ(got, reference_order);
}

// ---- round trip and accepted edge cases ----

TEST(Safetensors, RoundTripKeepsEveryByte) {
  std::vector<std::string> payloads = {std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8), std::string("\xAB", 1),
                                       std::string("\x10\x20\x30", 3), std::string(), std::string("\x7F\x80", 2)};
  std::vector<TensorBytes> tensors = {
      {"w.f32", DType::F32, {2}, as_span(payloads[0])},
      {"w.f4", DType::F4, {2}, as_span(payloads[1])},         // two 4-bit values in one byte
      {"w.f6", DType::F6_E2M3, {4}, as_span(payloads[2])},    // four 6-bit values in three bytes
      {"w.none", DType::BF16, {3, 0, 5}, as_span(payloads[3])},
      {"w.bf16", DType::BF16, {}, as_span(payloads[4])},      // a scalar
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "12"}};
  auto bytes = serialize_safetensors(tensors, metadata);
  auto file = parse_string(bytes);
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo* info = file.find(tensors[i].name);
    ASSERT_NE(info, nullptr) << tensors[i].name;
    EXPECT_EQ(info->dtype, tensors[i].dtype);
    EXPECT_EQ(info->shape, tensors[i].shape);
    auto got = file.data(*info);
    EXPECT_EQ(std::string(got.begin(), got.end()), payloads[i]) << tensors[i].name;
  }
  EXPECT_EQ(file.find("w.missing"), nullptr);
  // The header (after the 8-byte length) is padded to a multiple of 8 so the data starts aligned.
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes.substr(8, header_len).find("{\"__metadata__\":{\"format\":\"pt\",\"step\":\"12\"},"), 0u);
}

TEST(Safetensors, OpenKeepsTheMappingAcrossMoves) {
  auto dir = scratch_dir("move");
  std::string payload = "abcdefgh";
  write_safetensors(dir / "m.safetensors", {{"x", DType::U8, {8}, as_span(payload)}}, {{"format", "pt"}});
  auto opened = SafetensorsFile::open(dir / "m.safetensors");
  SafetensorsFile moved = std::move(opened);
  auto data = moved.data(*moved.find("x"));
  EXPECT_EQ(std::string(data.begin(), data.end()), payload);
  stdfs::remove_all(dir);
}

TEST(Safetensors, AcceptsWhatTheReferenceAccepts) {
  // {} with no data is a valid file, with or without the padding the writer adds.
  EXPECT_EQ(rejection(file_bytes("{}")), "");
  EXPECT_EQ(rejection(file_bytes("{}      ")), "");
  // Leading whitespace, JSON key order unrelated to the offsets, zero-size tensors sharing an offset.
  auto file = parse_string(file_bytes(" \n{\"b\":" + entry("U8", "[2]", 1, 3) + ",\"a\":" + entry("U8", "[1]", 0, 1) +
                                      ",\"z1\":" + entry("F32", "[0]", 3, 3) + ",\"z2\":" + entry("F32", "[4,0]", 3, 3) + "}",
                                      "xyz"));
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.tensors()[0].name, "a");  // sorted by name
  auto b = file.data(*file.find("b"));
  EXPECT_EQ(std::string(b.begin(), b.end()), "yz");
  // "__metadata__": null reads as no metadata, as in the reference.
  EXPECT_EQ(rejection(file_bytes("{\"__metadata__\":null}")), "");
  // Sub-byte types whose total is whole bytes.
  EXPECT_EQ(rejection(file_bytes("{\"a\":" + entry("F4", "[2,3]", 0, 3) + "}", "abc")), "");
  EXPECT_EQ(rejection(file_bytes("{\"a\":" + entry("F6_E3M2", "[4]", 0, 3) + "}", "abc")), "");
}

// ---- one test per check, in the reference's order ----

TEST(SafetensorsCheck, HeaderTooSmall) {
  expect_rejected("", "HeaderTooSmall", "file is 0 bytes");
  expect_rejected(std::string(7, '\0'), "HeaderTooSmall", "smaller than the 8-byte header length");
  // Through open(): an empty file cannot be mapped, and the message names the path.
  auto dir = scratch_dir("small");
  for (size_t size : {0, 5}) {
    fs::write_file_atomic(dir / "short.safetensors", std::string(size, 'x'));
    try {
      SafetensorsFile::open(dir / "short.safetensors");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find((dir / "short.safetensors").string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("HeaderTooSmall"), std::string::npos) << e.what();
    }
  }
  stdfs::remove_all(dir);
}

TEST(SafetensorsCheck, HeaderTooLarge) {
  expect_rejected(u64_le(100'000'001) + "{}", "HeaderTooLarge", "header length 100000001 exceeds the limit");
  expect_rejected(u64_le(UINT64_MAX), "HeaderTooLarge", "18446744073709551615");
}

TEST(SafetensorsCheck, InvalidHeaderLength) {
  expect_rejected(u64_le(100'000'000) + "{}", "InvalidHeaderLength", "runs past the end of the 10-byte file");
  expect_rejected(u64_le(3) + "{}", "InvalidHeaderLength", "header length 3");
}

TEST(SafetensorsCheck, HeaderNotUtf8) {
  expect_rejected(file_bytes("{\"\xff\":1}"), "InvalidHeader", "not valid UTF-8 (byte 2");
  expect_rejected(file_bytes("{\"\xc0\xaf\":1}"), "InvalidHeader", "not valid UTF-8");      // overlong '/'
  expect_rejected(file_bytes("{\"\xed\xa0\x80\":1}"), "InvalidHeader", "not valid UTF-8");  // a surrogate
  expect_rejected(file_bytes("{\"\xf4\x90\x80\x80\":1}"), "InvalidHeader", "not valid UTF-8");  // > U+10FFFF
  expect_rejected(file_bytes("{\"\xe2\x82\":1}"), "InvalidHeader", "not valid UTF-8");  // truncated sequence
  // Well-formed multi-byte text passes this check (and then the JSON must be right).
  EXPECT_EQ(rejection(file_bytes("{\"__metadata__\":{\"\xc3\xa9\":\"\xe6\x9d\x83\xf0\x9f\x98\x80\"}}")), "");
}

TEST(SafetensorsCheck, InvalidJsonSyntax) {
  const std::string code = "InvalidHeaderDeserialization";
  expect_rejected(file_bytes(""), code, "invalid JSON");
  expect_rejected(file_bytes("{"), code, "invalid JSON");
  expect_rejected(file_bytes("{}x"), code, "invalid JSON");
  // NUL is not JSON padding (nlohmann alone would stop reading at it and accept the header).
  expect_rejected(file_bytes(std::string("{}\0", 3)), code, "NUL byte at byte 2");
  expect_rejected(file_bytes(std::string("{}\0garbage", 10)), code, "NUL byte");
  expect_rejected(file_bytes("\xEF\xBB\xBF{}"), code, "byte order mark");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 0, 1) + ",}", "x"), code, "invalid JSON");
}

TEST(SafetensorsCheck, WrongJsonShape) {
  const std::string code = "InvalidHeaderDeserialization";
  expect_rejected(file_bytes("[]"), code, "the header must be a JSON object, found an array");
  expect_rejected(file_bytes("\"x\""), code, "the header must be a JSON object");
  expect_rejected(file_bytes("{\"a\":[]}"), code, "tensor \"a\" must be an object, found an array");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"F31\",\"shape\":[],\"data_offsets\":[0,0]}}"), code,
                  "unknown dtype \"F31\"");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,0]}}"), code,
                  "dtype must be a string");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[-1]", 0, 0) + "}"), code, "found the negative number -1");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1.0]", 0, 1) + "}", "x"), code, "found the number 1.0");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[true]", 0, 1) + "}", "x"), code, "found true");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "2", 0, 2) + "}", "xy"), code, "shape must be an array");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,1]}}", "x"), code,
                  "data_offsets has more than 2 values");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", "x"), code,
                  "data_offsets has 1 values, expected 2");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", "x"), code, "missing field \"data_offsets\"");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":1}}", "x"), code,
                  "unknown field \"extra\"");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "x"),
                  code, "duplicate field \"dtype\"");
  expect_rejected(file_bytes("{\"__metadata__\":{\"k\":1}}"), code, "__metadata__ value of \"k\" must be a string");
  expect_rejected(file_bytes("{\"__metadata__\":[\"k\"]}"), code, "__metadata__ must be an object of strings");
  expect_rejected(file_bytes("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"), code, "duplicate __metadata__ key");
}

TEST(SafetensorsCheck, HostileJsonIsRejectedCheaply) {
  const std::string code = "InvalidHeaderDeserialization";
  // Nesting far beyond the three levels the format has: rejected at the first extra level, and
  // never recursed into (a million brackets would overflow a recursive parser's stack).
  expect_rejected(file_bytes("{\"a\":" + std::string(1'000'000, '[')), code, "must be an object, found an array");
  expect_rejected(file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[[[[[[1]]]]]],\"data_offsets\":[0,1]}}", "x"), code,
                  "shape must hold non-negative integers, found an array");
  // Integers beyond 64 bits become floating point in nlohmann: never a shape or an offset.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[18446744073709551616]", 0, 0) + "}"), code,
                  "found the number 18446744073709551616");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1e400]", 0, 0) + "}"), code, "invalid JSON");
  // A huge string is quoted in the message only in part.
  std::string message = rejection(file_bytes("{\"a\":\"" + std::string(100'000, 'q') + "\"}"));
  EXPECT_NE(message.find("InvalidHeaderDeserialization"), std::string::npos);
  EXPECT_LT(message.size(), 1000u);
}

TEST(SafetensorsCheck, UntrustedTextInMessagesIsEscaped) {
  // A name holding NUL or other control characters (legal JSON escapes) must not cut the message
  // short or put raw control bytes into a log line.
  std::string message = rejection(file_bytes("{\"a\\u0000b\\n\":" + entry("U8", "[1]", 1, 2) + "}", "xx"));
  EXPECT_NE(message.find("tensor \"a\\x00b\\x0a\" has data_offsets [1, 2]"), std::string::npos) << message;
  EXPECT_NE(message.find("(InvalidOffset)"), std::string::npos) << message;
}

TEST(SafetensorsCheck, DuplicateTensorNames) {
  // The reference silently keeps one of the two; we refuse the file.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 0, 1) + ",\"a\":" + entry("U8", "[1]", 0, 1) + "}", "x"),
                  "InvalidHeaderDeserialization", "duplicate tensor name \"a\"");
}

TEST(SafetensorsCheck, InvalidOffset) {
  const std::string code = "InvalidOffset";
  // A gap before the first tensor.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 1, 2) + "}", "xx"), code,
                  "tensor \"a\" has data_offsets [1, 2]; expected it to begin at 0");
  // A gap between tensors.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 0, 1) + ",\"b\":" + entry("U8", "[1]", 2, 3) + "}", "xxx"),
                  code, "tensor \"b\" has data_offsets [2, 3]; expected it to begin at 1");
  // Overlap (aliasing the same bytes).
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[2]", 0, 2) + ",\"b\":" + entry("U8", "[2]", 1, 3) + "}", "xxx"),
                  code, "tensor \"b\"");
  // end < begin.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 0, 1) + ",\"b\":" + entry("U8", "[0]", 1, 0) + "}", "x"),
                  code, "[1, 0]");
}

TEST(SafetensorsCheck, ValidationOverflow) {
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[4294967296,4294967296]", 0, 0) + "}"), "ValidationOverflow",
                  "element count of its shape overflows");
  // The count fits but count x bits does not.
  expect_rejected(file_bytes("{\"a\":" + entry("F32", "[1152921504606846976]", 0, 0) + "}"), "ValidationOverflow",
                  "size in bits overflows");
}

TEST(SafetensorsCheck, MisalignedSubByteSlice) {
  expect_rejected(file_bytes("{\"a\":" + entry("F4", "[3]", 0, 2) + "}", "xx"), "MisalignedSlice",
                  "3 elements of F4 (4 bits) do not end on a byte boundary");
  expect_rejected(file_bytes("{\"a\":" + entry("F6_E2M3", "[2]", 0, 2) + "}", "xx"), "MisalignedSlice", "F6_E2M3");
}

TEST(SafetensorsCheck, TensorInvalidInfo) {
  expect_rejected(file_bytes("{\"a\":" + entry("F32", "[2]", 0, 4) + "}", "xxxx"), "TensorInvalidInfo",
                  "data_offsets span 4 bytes but 2 elements of F32 need 8");
  expect_rejected(file_bytes("{\"a\":" + entry("BF16", "[]", 0, 0) + "}"), "TensorInvalidInfo", "need 2");
}

TEST(SafetensorsCheck, MetadataIncompleteBuffer) {
  const std::string header = "{\"a\":" + entry("U8", "[4]", 0, 4) + "}";
  expect_rejected(file_bytes(header, "xyz"), "MetadataIncompleteBuffer", "truncated: the tensors need 4 data bytes, the file holds 3");
  expect_rejected(file_bytes(header, "xyzw!"), "MetadataIncompleteBuffer", "(trailing bytes)");
  expect_rejected(file_bytes("{}", "x"), "MetadataIncompleteBuffer", "trailing bytes");
}

TEST(SafetensorsCheck, HostileOffsetsAndShapes) {
  // Offsets and sizes far past EOF, and at the top of the u64 range: rejected, nothing read.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1152921504606846976]", 0, 1152921504606846976) + "}"),
                  "MetadataIncompleteBuffer", "truncated: the tensors need 1152921504606846976 data bytes");
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[1]", 0, 1) + ",\"b\":" +
                             entry("U8", "[1152921504606846976]", 1, 1152921504606846977) + "}", "x"),
                  "MetadataIncompleteBuffer", "truncated");
  // As in the reference, bits = count x width must fit in 64 bits even for U8.
  expect_rejected(file_bytes("{\"a\":" + entry("U8", "[18446744073709551615]", 0, UINT64_MAX) + "}"),
                  "ValidationOverflow", "size in bits overflows");
  expect_rejected(file_bytes("{\"a\":" + entry("U64", "[2305843009213693952]", 0, 0) + "}"), "ValidationOverflow", "");
}

// ---- the API guards ----

TEST(Safetensors, DataRefusesAForeignTensorInfo) {
  auto file = parse_string(file_bytes("{\"a\":" + entry("U8", "[2]", 0, 2) + "}", "xy"));
  TensorInfo foreign{"z", DType::U8, {4}, 0, 4};
  EXPECT_THROW(file.data(foreign), Error);
  TensorInfo inverted{"z", DType::U8, {0}, 2, 1};
  EXPECT_THROW(file.data(inverted), Error);
}

TEST(Safetensors, WriterRejectsInconsistentTensors) {
  std::string four = "abcd";
  auto message = [](const std::vector<TensorBytes>& tensors) {
    try {
      serialize_safetensors(tensors, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({{"a", DType::U8, {4}, as_span(four)}, {"a", DType::U8, {4}, as_span(four)}})
                .find("duplicate tensor name \"a\""), std::string::npos);
  EXPECT_NE(message({{"a", DType::F32, {2}, as_span(four)}}).find("4 bytes given, 2 elements of F32 need 8"),
            std::string::npos);
  EXPECT_NE(message({{"a", DType::F4, {3}, as_span(four)}}).find("do not fill whole bytes"), std::string::npos);
  EXPECT_NE(message({{"__metadata__", DType::U8, {4}, as_span(four)}}).find("reserved"), std::string::npos);
  EXPECT_NE(message({{"a", DType::U8, {UINT64_MAX, 2}, as_span(four)}}).find("overflows"), std::string::npos);
}

TEST(Safetensors, DtypeTable) {
  for (int i = 0; i <= static_cast<int>(DType::U64); ++i) {
    auto dtype = static_cast<DType>(i);
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_EQ(dtype_bits(DType::F4), 4u);
  EXPECT_EQ(dtype_bits(DType::F6_E3M2), 6u);
  EXPECT_EQ(dtype_bits(DType::BOOL), 8u);
  EXPECT_EQ(dtype_bits(DType::BF16), 16u);
  EXPECT_EQ(dtype_bits(DType::C64), 64u);
  EXPECT_EQ(parse_dtype("f32"), std::nullopt);  // the format's names are case-sensitive
}

}  // namespace
}  // namespace tune::io

namespace tune::io {
namespace {

// The fuzzer's seed corpus doubles as a regression set: valid_* and ref_* files parse, bad_* files
// are rejected with a message (crash inputs found by fuzzing are added here as bad_* files).
TEST(SafetensorsFuzzCorpus, SeedsParseAsNamed) {
  const auto dir = std::filesystem::path(TUNE_SOURCE_DIR) / "tests/fuzz/corpus/safetensors";
  size_t seen = 0;
  for (const auto& item : std::filesystem::directory_iterator(dir)) {
    const std::string name = item.path().filename().string();
    SCOPED_TRACE(name);
    const std::string bytes = fs::read_file(item.path());
    const std::string message = rejection(bytes);
    if (name.rfind("bad_", 0) == 0) {
      EXPECT_NE(message.find(": invalid safetensors file: "), std::string::npos) << message;
    } else {
      EXPECT_EQ(message, "");
    }
    ++seen;
  }
  EXPECT_GE(seen, 12u);
}

}  // namespace
}  // namespace tune::io

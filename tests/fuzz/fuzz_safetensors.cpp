// libFuzzer target for the safetensors reader. Each input is used twice:
//  1. as raw file bytes, straight into SafetensorsFile::parse;
//  2. as a recipe that a decoder turns into a mostly-valid file (a real header with tensors whose
//     offsets, shapes, dtypes and lengths are right unless the recipe asks for one defect), so most
//     inputs get past the JSON parse and reach the offset/shape/size checks.
// Whatever the parser accepts must satisfy the format's invariants and survive a write/read round
// trip through our writer; any violation aborts (a crash for libFuzzer). Rejections are tune::Error;
// any other exception escapes and is reported as a crash too.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "tune/core/error.h"
#include "tune/io/safetensors.h"

namespace {

using tune::io::DType;
using tune::io::SafetensorsFile;
using tune::io::TensorBytes;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "safetensors fuzz invariant violated: %s\n", what);
  std::abort();
}

#define FUZZ_ASSERT(cond) \
  do {                    \
    if (!(cond)) violated(#cond); \
  } while (0)

// An accepted file: offsets tile the buffer, sizes match dtype x shape, and our writer's output of
// the same tensors reads back to the same tensors, metadata and bytes.
void check_accepted(const SafetensorsFile& file, std::span<const uint8_t> bytes) {
  uint64_t total = 0;
  std::vector<TensorBytes> tensors;
  for (const auto& info : file.tensors()) {
    auto data = file.data(info);
    FUZZ_ASSERT(data.data() >= bytes.data() && data.data() + data.size() <= bytes.data() + bytes.size());
    FUZZ_ASSERT(data.size() * 8 == info.numel() * tune::io::dtype_bits(info.dtype));
    FUZZ_ASSERT(file.find(info.name) == &info);
    total += data.size();
    tensors.push_back({info.name, info.dtype, info.shape, data});
  }
  FUZZ_ASSERT(total <= bytes.size());
  std::string rewritten = tune::io::serialize_safetensors(tensors, file.metadata());
  auto again = SafetensorsFile::parse(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(rewritten.data()), rewritten.size()), "rewritten");
  FUZZ_ASSERT(again.metadata() == file.metadata());
  FUZZ_ASSERT(again.tensors().size() == file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const auto& a = file.tensors()[i];
    const auto& b = again.tensors()[i];
    FUZZ_ASSERT(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape);
    auto da = file.data(a);
    auto db = again.data(b);
    FUZZ_ASSERT(da.size() == db.size() && std::equal(da.begin(), da.end(), db.begin()));
  }
  // The writer is deterministic and canonical: writing what it wrote gives the same bytes.
  std::vector<TensorBytes> second;
  for (const auto& info : again.tensors()) second.push_back({info.name, info.dtype, info.shape, again.data(info)});
  FUZZ_ASSERT(tune::io::serialize_safetensors(second, again.metadata()) == rewritten);
}

// TUNE_FUZZ_STATS=1 prints, at exit, how often each reader check fired for the decoded files: the
// way to see that the decoder gets inputs past the JSON parse.
struct Stats {
  bool enabled = std::getenv("TUNE_FUZZ_STATS") != nullptr;
  std::map<std::string, long> outcomes;
  ~Stats() {
    for (const auto& [outcome, count] : outcomes) std::fprintf(stderr, "decoded %-30s %ld\n", outcome.c_str(), count);
  }
};
Stats stats;

void count(bool decoded, const std::string& outcome) {
  if (stats.enabled && decoded) ++stats.outcomes[outcome];
}

void try_parse(std::span<const uint8_t> bytes, bool decoded) {
  try {
    auto file = SafetensorsFile::parse(bytes, "fuzz");
    check_accepted(file, bytes);
    count(decoded, "accepted");
  } catch (const tune::Error& e) {
    // A rejection: the expected outcome for most inputs. The check is the "(Code)" at the end.
    if (stats.enabled) {
      std::string message = e.what();
      auto open = message.rfind('(');
      count(decoded, open == std::string::npos ? message : message.substr(open));
    }
  }
}

// ---- the recipe decoder ----

constexpr const char* kDTypeNames[] = {"BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
                                       "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32",
                                       "U32", "F32", "C64", "F64", "I64", "U64"};
constexpr size_t kDTypeCount = sizeof(kDTypeNames) / sizeof(kDTypeNames[0]);
constexpr uint64_t kInterestingDims[] = {0, 1, 2, 3, 4, 7, 8, 16, 255, 4096, 1ull << 32, (1ull << 32) + 1,
                                         1ull << 61, 1ull << 62, 1ull << 63, UINT64_MAX - 1, UINT64_MAX};
constexpr size_t kMaxData = 1 << 16;  // keeps declared-but-absent data from growing the input

// One defect a tensor entry can carry; most entries carry none.
enum class Defect : uint8_t {
  kNone, kBeginOff, kEndOff, kSwapOffsets, kRandomOffsets, kUnknownDtype, kNegativeDim, kFloatDim,
  kHugeDim, kExtraField, kMissingField, kDuplicateField, kThreeOffsets, kShapeNotArray, kWrongType, kCount
};

struct Entry {
  std::string name;
  std::string dtype;
  size_t bits = 8;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;
  Defect defect = Defect::kNone;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string pick_name(FuzzedDataProvider& in, size_t index) {
  const int kind = in.ConsumeIntegralInRange<int>(0, 19);
  if (kind < 8) return "t" + std::to_string(index);
  if (kind < 16) return "model.layers." + std::to_string(index) + ".weight";
  if (kind == 16) return "__metadata__";  // the reserved key in a tensor's place
  if (kind == 17) return "t0";            // likely a duplicate
  return in.ConsumeRandomLengthString(16);  // anything: control bytes, invalid UTF-8...
}

uint64_t pick_dim(FuzzedDataProvider& in) {
  if (in.ConsumeBool()) return in.ConsumeIntegralInRange<uint64_t>(0, 9);
  if (in.ConsumeBool()) return in.PickValueInArray(kInterestingDims);
  return in.ConsumeIntegral<uint64_t>();
}

std::string build_file(FuzzedDataProvider& in) {
  std::string header = in.ConsumeBool() ? "{" : " \n\t{";
  bool first = true;
  auto comma = [&] {
    if (!first) header += in.ConsumeIntegralInRange<int>(0, 15) == 0 ? " , " : ",";
    first = false;
  };

  // 0-2: no metadata, 3-7: strings, 8: null, 9: a value that is not a string.
  const int metadata_kind = in.ConsumeIntegralInRange<int>(0, 9);
  const bool has_metadata = metadata_kind >= 3;
  auto emit_metadata = [&] {
    comma();
    header += "\"__metadata__\":";
    if (metadata_kind == 8) {
      header += "null";
      return;
    }
    header += "{";
    int n = in.ConsumeIntegralInRange<int>(0, 3);
    for (int i = 0; i < n; ++i) {
      if (i) header += ",";
      header += "\"" + json_escape(in.ConsumeRandomLengthString(12)) + "\":";
      header += metadata_kind == 9 && i == n - 1 ? "7" : "\"" + json_escape(in.ConsumeRandomLengthString(12)) + "\"";
    }
    header += "}";
  };
  const bool metadata_last = in.ConsumeIntegralInRange<int>(0, 3) == 0;
  if (has_metadata && !metadata_last) emit_metadata();

  // Tensors with consistent shapes and offsets, laid out in creation order.
  std::vector<Entry> entries(in.ConsumeIntegralInRange<size_t>(0, 8));
  uint64_t offset = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    e.name = pick_name(in, i);
    size_t d = in.ConsumeIntegralInRange<size_t>(0, kDTypeCount - 1);
    e.dtype = kDTypeNames[d];
    e.bits = e.dtype == "F4" ? 4 : (e.dtype[0] == 'F' && e.dtype[1] == '6') ? 6
           : e.dtype.find("64") != std::string::npos ? 64 : e.dtype.find("32") != std::string::npos ? 32
           : e.dtype.find("16") != std::string::npos ? 16 : 8;
    const size_t rank = in.ConsumeIntegralInRange<size_t>(0, 4);
    uint64_t numel = 1;
    for (size_t r = 0; r < rank; ++r) {
      uint64_t dim = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? pick_dim(in) : in.ConsumeIntegralInRange<uint64_t>(0, 6);
      e.shape.push_back(dim);
      numel *= dim;  // may wrap; then the recorded size is nonsense, which the reader must reject
    }
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0 && (numel * e.bits) % 8 != 0 && !e.shape.empty())
      e.shape.back() += 1;  // usually keep sub-byte tensors whole bytes
    numel = 1;
    for (uint64_t dim : e.shape) numel *= dim;
    e.begin = offset;
    e.end = offset + numel * e.bits / 8;
    offset = e.end;
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0)
      e.defect = static_cast<Defect>(in.ConsumeIntegralInRange<int>(1, static_cast<int>(Defect::kCount) - 1));
  }
  // JSON key order is independent of the offsets.
  if (in.ConsumeBool() && entries.size() > 1) {
    for (size_t i = entries.size() - 1; i > 0; --i)
      std::swap(entries[i], entries[in.ConsumeIntegralInRange<size_t>(0, i)]);
  }

  for (const Entry& e : entries) {
    comma();
    auto num = [&](uint64_t v) { return std::to_string(v); };
    auto jitter = [&](uint64_t v) { return v + in.ConsumeIntegralInRange<int64_t>(-3, 3); };
    uint64_t begin = e.begin, end = e.end;
    switch (e.defect) {
      case Defect::kBeginOff: begin = jitter(begin); break;
      case Defect::kEndOff: end = jitter(end); break;
      case Defect::kSwapOffsets: std::swap(begin, end); break;
      case Defect::kRandomOffsets:
        begin = in.ConsumeIntegral<uint64_t>();
        end = in.ConsumeIntegral<uint64_t>();
        break;
      default: break;
    }
    std::string dtype = "\"" + (e.defect == Defect::kUnknownDtype ? json_escape(in.ConsumeRandomLengthString(8)) : e.dtype) + "\"";
    std::string shape = "[";
    for (size_t r = 0; r < e.shape.size(); ++r) {
      if (r) shape += ",";
      shape += num(e.shape[r]);
    }
    if (e.defect == Defect::kNegativeDim) shape += e.shape.empty() ? "-1" : ",-1";
    if (e.defect == Defect::kFloatDim) shape += e.shape.empty() ? "1.0" : ",2e0";
    if (e.defect == Defect::kHugeDim) shape += e.shape.empty() ? "18446744073709551616" : ",99999999999999999999999";
    shape += "]";
    if (e.defect == Defect::kShapeNotArray) shape = "{}";
    std::string offsets = "[" + num(begin) + "," + num(end) + (e.defect == Defect::kThreeOffsets ? ",0]" : "]");
    if (e.defect == Defect::kWrongType) offsets = "\"" + num(begin) + "\"";

    std::vector<std::string> fields = {"\"dtype\":" + dtype, "\"shape\":" + shape, "\"data_offsets\":" + offsets};
    if (e.defect == Defect::kMissingField) fields.erase(fields.begin() + in.ConsumeIntegralInRange<int>(0, 2));
    if (e.defect == Defect::kDuplicateField) fields.push_back(fields[in.ConsumeIntegralInRange<int>(0, 2)]);
    if (e.defect == Defect::kExtraField) fields.push_back("\"extra\":[1,{\"x\":null}]");
    if (in.ConsumeBool()) std::reverse(fields.begin(), fields.end());
    header += "\"" + json_escape(e.name) + "\":{";
    for (size_t f = 0; f < fields.size(); ++f) header += (f ? "," : "") + fields[f];
    header += "}";
  }
  if (has_metadata && metadata_last) emit_metadata();
  header += "}";

  // Padding: none, the writer's spaces, or something that is not JSON whitespace.
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: header.append((8 - header.size() % 8) % 8, ' '); break;
    case 1: header += "\n\r\t "; break;
    case 2: header += in.ConsumeRandomLengthString(4); break;
    default: break;
  }

  // Data: exactly what the offsets need, or a little more or less.
  uint64_t data_size = std::min<uint64_t>(offset, kMaxData);
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: data_size += in.ConsumeIntegralInRange<uint64_t>(1, 8); break;
    case 1: data_size -= std::min<uint64_t>(data_size, in.ConsumeIntegralInRange<uint64_t>(1, 8)); break;
    default: break;
  }
  uint64_t header_len = header.size();
  switch (in.ConsumeIntegralInRange<int>(0, 15)) {
    case 0: header_len += in.ConsumeIntegralInRange<int>(-4, 4); break;
    case 1: header_len = in.ConsumeIntegral<uint64_t>(); break;
    default: break;
  }
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header_len >> (8 * i)) & 0xFF);
  file += header;
  // The data bytes themselves: whatever input is left, repeated; their values are never checked.
  std::string fill = in.ConsumeRemainingBytesAsString();
  if (fill.empty()) fill = "\x5a";
  for (uint64_t i = 0; i < data_size; ++i) file += fill[i % fill.size()];
  return file;
}

// TUNE_FUZZ_DUMP=<dir> writes every decoded file there (run with -runs=0 over a corpus), for the
// differential check against the reference library (tests/fuzz/differential.py).
void dump(const std::string& file) {
  static const char* dir = std::getenv("TUNE_FUZZ_DUMP");
  static long counter = 0;
  if (!dir) return;
  std::string path = std::string(dir) + "/decoded-" + std::to_string(counter++);
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(file.data(), 1, file.size(), f);
    std::fclose(f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try_parse(std::span<const uint8_t>(data, size), false);
  FuzzedDataProvider recipe(data, size);
  std::string file = build_file(recipe);
  dump(file);
  try_parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(file.data()), file.size()), true);
  return 0;
}

// GGUF reader: every read is bounds-checked against the mapped bytes, every count is checked
// against what the remaining bytes could hold before anything is allocated, and the tensor table
// is validated (types, block sizes, overflow, alignment, data inside the file, no overlaps).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "io/safetensors_header.h"
#include "tune/core/error.h"
#include "tune/io/gguf.h"

namespace tune::io {
namespace {

constexpr uint32_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 63;   // GGML_MAX_NAME - 1
constexpr int kMaxArrayDepth = 8;
// Each element becomes a GgufValue (48 bytes): a bound keeps a small malicious file from asking for
// many gigabytes. Real arrays are vocabularies (~256k entries) and charsmaps (~200k bytes).
constexpr uint64_t kMaxArrayLength = uint64_t{1} << 26;
constexpr uint64_t kDefaultAlignment = 32;

std::string quoted(std::string_view s) { return str("\"", detail::printable(s), "\""); }

// Reads little-endian values from untrusted bytes; every failure names the file and the offset.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& origin) : bytes_(bytes), origin_(origin) {}

  [[noreturn]] void reject(const std::string& problem, uint64_t at) const {
    fail(origin_, ": invalid GGUF file: ", problem, " (at byte ", at, ")");
  }
  [[noreturn]] void reject(const std::string& problem) const { reject(problem, pos_); }

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      reject(str("file is truncated: ", what, " needs ", n, " bytes, ", remaining(), " remain of ", bytes_.size()));
  }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v{};
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // the host is little-endian (x86-64, aarch64)
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const uint64_t at = pos_;
    const uint64_t n = read<uint64_t>(what + " (length)");
    if (n > remaining())
      reject(str(what, ": string length ", n, " runs past the end of the file (", remaining(), " bytes remain)"), at);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& origin_;
  uint64_t pos_ = 0;
};

// The fewest bytes one element of a type takes, so an array count can be checked before reserving.
uint64_t min_element_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: return 8;   // the length
    case GgufValueType::ARRAY: return 12;   // element type + count
  }
  return 1;
}

GgufValueType read_type(Cursor& c, const std::string& what) {
  const uint64_t at = c.pos();
  const uint32_t t = c.read<uint32_t>(what);
  if (t > static_cast<uint32_t>(GgufValueType::FLOAT64)) c.reject(str(what, ": unknown value type ", t), at);
  return static_cast<GgufValueType>(t);
}

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& what, int depth) {
  switch (type) {
    case GgufValueType::UINT8: return GgufValue::unsigned_int(type, c.read<uint8_t>(what));
    case GgufValueType::UINT16: return GgufValue::unsigned_int(type, c.read<uint16_t>(what));
    case GgufValueType::UINT32: return GgufValue::unsigned_int(type, c.read<uint32_t>(what));
    case GgufValueType::UINT64: return GgufValue::unsigned_int(type, c.read<uint64_t>(what));
    case GgufValueType::INT8: return GgufValue::signed_int(type, c.read<int8_t>(what));
    case GgufValueType::INT16: return GgufValue::signed_int(type, c.read<int16_t>(what));
    case GgufValueType::INT32: return GgufValue::signed_int(type, c.read<int32_t>(what));
    case GgufValueType::INT64: return GgufValue::signed_int(type, c.read<int64_t>(what));
    case GgufValueType::FLOAT32: return GgufValue::floating(type, c.read<float>(what));
    case GgufValueType::FLOAT64: return GgufValue::floating(type, c.read<double>(what));
    case GgufValueType::BOOL: {
      const uint64_t at = c.pos();
      const uint8_t b = c.read<uint8_t>(what);
      if (b > 1) c.reject(str(what, ": BOOL value ", unsigned(b), " is neither 0 nor 1"), at);
      return GgufValue::boolean(b == 1);
    }
    case GgufValueType::STRING: return GgufValue::string(c.read_string(what));
    case GgufValueType::ARRAY: {
      const uint64_t at = c.pos();
      if (depth >= kMaxArrayDepth) c.reject(str(what, ": arrays nested deeper than ", kMaxArrayDepth), at);
      const GgufValueType element = read_type(c, what + " (array element type)");
      const uint64_t count = c.read<uint64_t>(what + " (array length)");
      if (count > kMaxArrayLength)
        c.reject(str(what, ": array length ", count, " exceeds the limit of ", kMaxArrayLength, " elements"), at);
      const uint64_t min_bytes = min_element_bytes(element);
      if (count > c.remaining() / min_bytes)
        c.reject(str(what, ": array length ", count, " of ", gguf_value_type_name(element), " (at least ", min_bytes,
                     " bytes each) runs past the end of the file (", c.remaining(), " bytes remain)"),
                 at);
      GgufValue::Array items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(c, element, str(what, "[", i, "]"), depth + 1));
      return GgufValue::array(element, std::move(items));
    }
  }
  c.reject(str(what, ": unknown value type"));
}

}  // namespace

struct GgufFile::Mapping {
  void* address = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (address) ::munmap(address, length);
  }
};

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;  // validated not to overflow when the file was opened
  return n;
}

std::vector<uint64_t> GgufTensorInfo::shape() const { return {dims.rbegin(), dims.rend()}; }

GgufFile GgufFile::open(const std::filesystem::path& path) {
  const std::string origin = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(origin, ": cannot open GGUF file: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(origin, ": cannot stat GGUF file: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(origin, ": not a regular file");
  }
  auto mapping = std::make_unique<Mapping>();
  const auto size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(origin, ": cannot map GGUF file: ", std::strerror(e));
    }
    mapping->address = address;
    mapping->length = size;
  }
  ::close(fd);
  const auto* bytes = static_cast<const uint8_t*>(mapping->address);
  GgufFile file = parse(std::span<const uint8_t>(bytes, size), origin);
  file.mapping_ = std::move(mapping);
  return file;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, std::string origin) {
  GgufFile file;
  file.origin_ = std::move(origin);
  file.bytes_ = bytes;
  Cursor c(bytes, file.origin_);

  // Header.
  c.need(4, "the magic");
  if (std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    c.reject(str("bad magic ", quoted(std::string_view(reinterpret_cast<const char*>(bytes.data()), 4)),
                 ", expected \"GGUF\""),
             0);
  }
  c.read<uint32_t>("the magic");
  const uint64_t version_at = c.pos();
  file.version_ = c.read<uint32_t>("the version");
  if (file.version_ == 1) c.reject("GGUF version 1 (32-bit counts) is not supported; convert it to version 3", version_at);
  if ((file.version_ & 0xFFFF) == 0 && file.version_ != 0)
    c.reject(str("version field ", file.version_, " looks byte-swapped: big-endian GGUF files are not supported"),
             version_at);
  if (file.version_ != 2 && file.version_ != 3)
    c.reject(str("unsupported GGUF version ", file.version_, " (supported: 2, 3)"), version_at);
  const uint64_t counts_at = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Each key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at
  // least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
  if (n_kv > c.remaining() / 13)
    c.reject(str("metadata count ", n_kv, " cannot fit in the ", c.remaining(), " remaining bytes"), counts_at + 8);
  if (n_tensors > c.remaining() / 24)
    c.reject(str("tensor count ", n_tensors, " cannot fit in the ", c.remaining(), " remaining bytes"), counts_at);

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = c.pos();
    std::string key = c.read_string(str("metadata key #", i));
    const std::string what = str("metadata key ", quoted(key));
    if (file.metadata_.count(key)) c.reject(str("duplicate ", what), at);
    const GgufValueType type = read_type(c, what + " (value type)");
    GgufValue value = read_value(c, type, what, 0);
    file.metadata_order_.push_back(key);
    file.metadata_.emplace(std::move(key), std::move(value));
  }
  if (const GgufValue* a = file.find("general.alignment")) {
    const auto v = a->as_uint();
    if (a->type() != GgufValueType::UINT32 || !v || *v == 0 || (*v & (*v - 1)) != 0)
      fail(file.origin_, ": invalid GGUF file: metadata key \"general.alignment\" must be a UINT32 power of two, got ",
           gguf_value_type_name(a->type()), " ", a->describe());
    file.alignment_ = *v;
  } else {
    file.alignment_ = kDefaultAlignment;
  }

  // Tensor infos.
  file.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = c.pos();
    GgufTensorInfo t;
    t.name = c.read_string(str("tensor name #", i));
    const std::string what = str("tensor ", quoted(t.name));
    if (t.name.size() > kMaxTensorName)
      c.reject(str(what, ": name is ", t.name.size(), " bytes, longer than ggml's limit of ", kMaxTensorName), at);
    if (file.tensor_index_.count(t.name)) c.reject(str("duplicate ", what), at);
    const uint64_t dims_at = c.pos();
    const uint32_t n_dims = c.read<uint32_t>(what + " (n_dims)");
    if (n_dims > kMaxDims) c.reject(str(what, ": ", n_dims, " dimensions, more than ", kMaxDims), dims_at);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = c.pos();
      const uint64_t dim = c.read<uint64_t>(str(what, " (dim ", d, ")"));
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.reject(str(what, ": dimension ", d, " is ", dim, ", beyond int64"), dim_at);
      t.dims.push_back(dim);
      if (__builtin_mul_overflow(numel, dim, &numel) || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.reject(str(what, ": the element count of its dimensions overflows int64"), dim_at);
    }
    const uint64_t type_at = c.pos();
    const uint32_t type_id = c.read<uint32_t>(what + " (type)");
    const auto traits = ggml_type_traits(type_id);
    if (!traits) c.reject(str(what, ": unknown ggml type ", type_id), type_at);
    t.type = traits->type;
    const uint64_t row = t.dims.empty() ? 1 : t.dims[0];
    if (row % traits->block_size != 0)
      c.reject(str(what, ": rows of ", row, " elements are not a multiple of the ", traits->name, " block size ",
                   traits->block_size),
               type_at);
    const uint64_t blocks = numel / traits->block_size;
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(traits->type_size), &t.nbytes))
      c.reject(str(what, ": its size in bytes overflows 64 bits"), type_at);
    const uint64_t offset_at = c.pos();
    t.offset = c.read<uint64_t>(what + " (offset)");
    if (t.offset % file.alignment_ != 0)
      c.reject(str(what, ": data offset ", t.offset, " is not a multiple of the alignment ", file.alignment_), offset_at);
    file.tensor_index_.emplace(t.name, file.tensors_.size());
    file.tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment; every tensor inside the file.
  const uint64_t infos_end = c.pos();
  file.data_start_ = (infos_end + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const uint64_t size = bytes.size();
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : file.tensors_) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  uint64_t previous_end = 0;
  const GgufTensorInfo* previous = nullptr;
  for (const GgufTensorInfo* t : by_offset) {
    const std::string what = str("tensor ", quoted(t->name));
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(file.data_start_, t->offset, &begin) || __builtin_add_overflow(begin, t->nbytes, &end) ||
        end > size)
      fail(file.origin_, ": invalid GGUF file: file is truncated: ", what, " (", ggml_type_name(t->type), ", ",
           t->nbytes, " bytes at data offset ", t->offset, ") ends past the end of the ", size, "-byte file");
    if (previous && t->offset < previous_end)
      fail(file.origin_, ": invalid GGUF file: ", what, " at data offset ", t->offset, " overlaps tensor ",
           quoted(previous->name), " which ends at ", previous_end);
    if (t->nbytes > 0) {
      previous_end = t->offset + t->nbytes;
      previous = t;
    }
  }
  return file;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_.find(std::string(key));
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

[[noreturn]] void wrong_type(const std::string& origin, std::string_view key, const GgufValue& v,
                             std::string_view expected) {
  fail(origin, ": GGUF metadata key \"", key, "\" should be ", expected, ", got ", gguf_value_type_name(v.type()), " ",
       v.describe());
}

}  // namespace

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto u = v->as_uint()) return u;
  wrong_type(origin_, key, *v, "a non-negative integer");
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto i = v->as_int()) return i;
  wrong_type(origin_, key, *v, "an integer");
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto d = v->as_double()) return d;
  wrong_type(origin_, key, *v, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto b = v->as_bool()) return b;
  wrong_type(origin_, key, *v, "a BOOL");
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = v->as_string()) return *s;
  wrong_type(origin_, key, *v, "a STRING");
}

std::optional<std::vector<std::string>> GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  const auto* items = v->as_array();
  if (!items || v->element_type() != GgufValueType::STRING) wrong_type(origin_, key, *v, "an array of STRING");
  std::vector<std::string> out;
  out.reserve(items->size());
  for (const auto& item : *items) out.push_back(*item.as_string());
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  const auto* items = v->as_array();
  if (!items) wrong_type(origin_, key, *v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(items->size());
  for (const auto& item : *items) {
    auto i = item.as_int();
    if (!i) wrong_type(origin_, key, *v, "an array of integers");
    out.push_back(*i);
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> GgufFile::data(const GgufTensorInfo& info) const {
  // Guards against a GgufTensorInfo from another file: never hand out bytes past the buffer.
  uint64_t begin = 0, end = 0;
  if (__builtin_add_overflow(data_start_, info.offset, &begin) || __builtin_add_overflow(begin, info.nbytes, &end) ||
      end > bytes_.size())
    fail(origin_, ": tensor ", quoted(info.name), " (", info.nbytes, " bytes at data offset ", info.offset,
         ") lies outside this file");
  return bytes_.subspan(begin, info.nbytes);
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& info) const {
  const auto& traits = ggml_traits(info.type);
  if (!traits.dequantizable)
    fail(origin_, ": tensor ", quoted(info.name), " has type ", traits.name,
         ", which tune cannot dequantize (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K)");
  std::vector<float> out(info.numel());
  io::dequantize(info.type, data(info), out);
  return out;
}

}  // namespace tune::io

// GGUF v3 writer: header, metadata (all 13 value types, nested arrays) in the caller's order,
// tensor infos with aligned offsets, the data section, each tensor padded to the alignment as the
// gguf package's GGUFWriter pads it. Streams to a temporary sibling renamed into place at finish().
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/io/gguf_writer.h"

namespace tune::io {
namespace {

constexpr uint32_t kVersion = 3;
constexpr size_t kMaxTensorName = 63;  // GGML_MAX_NAME - 1
constexpr uint64_t kDefaultAlignment = 32;

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the host is little-endian, as the format
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out += s;
}

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// An integer of the declared width, or an error naming the key (a GgufValue built by hand can
// hold 300 as a UINT8).
template <class T>
void put_int(std::string& out, const GgufValue& v, const std::string& what) {
  if constexpr (std::is_signed_v<T>) {
    const auto i = v.as_int();
    if (!i || *i < std::numeric_limits<T>::min() || *i > std::numeric_limits<T>::max())
      fail("GGUF writer: ", what, ": ", v.describe(), " does not fit ", gguf_value_type_name(v.type()));
    put<T>(out, static_cast<T>(*i));
  } else {
    const auto u = v.as_uint();
    if (!u || *u > std::numeric_limits<T>::max())
      fail("GGUF writer: ", what, ": ", v.describe(), " does not fit ", gguf_value_type_name(v.type()));
    put<T>(out, static_cast<T>(*u));
  }
}

void put_value(std::string& out, const GgufValue& v, const std::string& what) {
  switch (v.type()) {
    case GgufValueType::UINT8: return put_int<uint8_t>(out, v, what);
    case GgufValueType::INT8: return put_int<int8_t>(out, v, what);
    case GgufValueType::UINT16: return put_int<uint16_t>(out, v, what);
    case GgufValueType::INT16: return put_int<int16_t>(out, v, what);
    case GgufValueType::UINT32: return put_int<uint32_t>(out, v, what);
    case GgufValueType::INT32: return put_int<int32_t>(out, v, what);
    case GgufValueType::UINT64: return put_int<uint64_t>(out, v, what);
    case GgufValueType::INT64: return put_int<int64_t>(out, v, what);
    case GgufValueType::FLOAT32: return put<float>(out, static_cast<float>(*v.as_double()));
    case GgufValueType::FLOAT64: return put<double>(out, *v.as_double());
    case GgufValueType::BOOL: {
      const auto b = v.as_bool();
      if (!b) fail("GGUF writer: ", what, ": a BOOL without a boolean value");
      return put<uint8_t>(out, *b ? 1 : 0);
    }
    case GgufValueType::STRING: return put_string(out, *v.as_string());
    case GgufValueType::ARRAY: {
      const auto& items = *v.as_array();
      put<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
      put<uint64_t>(out, items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        // Every element must have the declared type: the format stores it once, for all.
        if (items[i].type() != v.element_type())
          fail("GGUF writer: ", what, "[", i, "] is ", gguf_value_type_name(items[i].type()), " in an array of ",
               gguf_value_type_name(v.element_type()));
        put_value(out, items[i], str(what, "[", i, "]"));
      }
      return;
    }
  }
  fail("GGUF writer: ", what, ": unknown value type ", static_cast<uint32_t>(v.type()));
}

void write_all(int fd, const void* data, size_t size, const std::filesystem::path& tmp) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

struct GgufWriter::State {
  std::filesystem::path path, tmp;
  std::string* memory = nullptr;  // serialize_gguf: bytes go here instead of a file
  int fd = -1;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::set<std::string> keys, names;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_size = 0;  // the data section so far, padding included
  size_t next = 0;         // the tensor write_tensor_data expects
  bool begun = false, finished = false;

  void emit(const void* data, size_t size) {
    if (memory) memory->append(static_cast<const char*>(data), size);
    else write_all(fd, data, size, tmp);
  }
  void discard() {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
      ::unlink(tmp.c_str());
    }
  }
};

GgufWriter::GgufWriter(std::filesystem::path path) : s_(std::make_unique<State>()) { s_->path = std::move(path); }
GgufWriter::GgufWriter(GgufWriter&&) noexcept = default;
GgufWriter& GgufWriter::operator=(GgufWriter&& other) noexcept {
  if (this != &other) {
    if (s_) s_->discard();
    s_ = std::move(other.s_);
  }
  return *this;
}
GgufWriter::~GgufWriter() {
  if (s_) s_->discard();
}

uint64_t GgufWriter::alignment() const { return s_->alignment; }
const std::vector<GgufTensorInfo>& GgufWriter::tensors() const { return s_->tensors; }

void GgufWriter::add(const std::string& key, GgufValue value) {
  if (s_->begun) fail("GGUF writer: ", s_->path.string(), ": metadata key \"", key, "\" added after the data began");
  if (key.empty()) fail("GGUF writer: ", s_->path.string(), ": empty metadata key");
  if (s_->keys.count(key)) fail("GGUF writer: ", s_->path.string(), ": metadata key \"", key, "\" added twice");
  if (key == "general.alignment") {
    // The reader (ours and ggml's) accepts only a UINT32 power of two.
    const auto a = value.as_uint();
    if (value.type() != GgufValueType::UINT32 || !a || *a == 0 || (*a & (*a - 1)) != 0)
      fail("GGUF writer: ", s_->path.string(), ": general.alignment must be a UINT32 power of two, not ",
           value.describe());
    s_->alignment = *a;
  }
  // Registered only once valid: a rejected call leaves the writer as it was.
  s_->keys.insert(key);
  s_->metadata.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<uint64_t> dims, GgmlType type) {
  const std::string& where = s_->path.string();
  if (s_->begun) fail("GGUF writer: ", where, ": tensor \"", name, "\" added after the data began");
  if (name.empty() || name.size() > kMaxTensorName)
    fail("GGUF writer: ", where, ": tensor name \"", name, "\" must be 1 to ", kMaxTensorName, " bytes");
  if (s_->names.count(name)) fail("GGUF writer: ", where, ": tensor \"", name, "\" added twice");
  if (dims.empty() || dims.size() > 4)
    fail("GGUF writer: ", where, ": tensor \"", name, "\" has ", dims.size(), " dims (1 to 4 allowed)");
  const GgmlTypeTraits& traits = ggml_traits(type);
  if (dims[0] % traits.block_size != 0)
    fail("GGUF writer: ", where, ": tensor \"", name, "\": row length ", dims[0], " is not a multiple of the ",
         traits.name, " block size ", traits.block_size);
  uint64_t n = 1;
  for (uint64_t d : dims)
    if (__builtin_mul_overflow(n, d, &n)) fail("GGUF writer: ", where, ": tensor \"", name, "\": element count overflows");
  GgufTensorInfo info;
  info.name = name;
  info.dims = std::move(dims);
  info.type = type;
  info.nbytes = ggml_nbytes(type, n);
  info.offset = align_up(s_->data_size, s_->alignment);
  s_->data_size = align_up(info.offset + info.nbytes, s_->alignment);
  s_->names.insert(name);
  s_->tensors.push_back(std::move(info));
}

void GgufWriter::begin_data() {
  State& s = *s_;
  if (s.begun) fail("GGUF writer: ", s.path.string(), ": begin_data called twice");
  // Offsets were computed with the alignment in force when each tensor was added; a later
  // general.alignment would invalidate them.
  uint64_t offset = 0;
  for (auto& t : s.tensors) {
    t.offset = align_up(offset, s.alignment);
    offset = align_up(t.offset + t.nbytes, s.alignment);
  }
  s.data_size = 0;
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, s.tensors.size());
  put<uint64_t>(head, s.metadata.size());
  for (const auto& [key, value] : s.metadata) {
    put_string(head, key);
    put<uint32_t>(head, static_cast<uint32_t>(value.type()));
    put_value(head, value, str("metadata key \"", key, "\""));
  }
  for (const auto& t : s.tensors) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) put<uint64_t>(head, d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, t.offset);
  }
  head.append(align_up(head.size(), s.alignment) - head.size(), '\0');
  if (!s.memory) {
    if (s.path.has_parent_path()) fs::ensure_directory(s.path.parent_path());
    s.tmp = fs::temp_sibling(s.path);
    s.fd = ::open(s.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s.fd < 0) fail("cannot write ", s.tmp.string(), ": ", std::strerror(errno));
  }
  s.begun = true;
  s.emit(head.data(), head.size());
}

void GgufWriter::write_tensor_data(std::span<const uint8_t> bytes) {
  State& s = *s_;
  if (!s.begun) fail("GGUF writer: ", s.path.string(), ": tensor data written before begin_data");
  if (s.next >= s.tensors.size()) fail("GGUF writer: ", s.path.string(), ": more tensor data than tensors declared");
  const GgufTensorInfo& t = s.tensors[s.next];
  if (bytes.size() != t.nbytes)
    fail("GGUF writer: ", s.path.string(), ": tensor \"", t.name, "\" needs ", t.nbytes, " bytes of ",
         ggml_type_name(t.type), ", ", bytes.size(), " given");
  static const char zeros[256] = {};
  if (t.offset > s.data_size) s.emit(zeros, t.offset - s.data_size);  // never more than alignment - 1
  s.emit(bytes.data(), bytes.size());
  s.data_size = t.offset + t.nbytes;
  const uint64_t padded = align_up(s.data_size, s.alignment);
  for (uint64_t left = padded - s.data_size; left > 0;) {
    const uint64_t n = std::min<uint64_t>(left, sizeof zeros);
    s.emit(zeros, n);
    left -= n;
  }
  s.data_size = padded;
  ++s.next;
}

void GgufWriter::finish() {
  State& s = *s_;
  if (!s.begun) begin_data();
  if (s.next != s.tensors.size())
    fail("GGUF writer: ", s.path.string(), ": ", s.tensors.size() - s.next, " of ", s.tensors.size(),
         " tensors have no data (the next is \"", s.tensors[s.next].name, "\")");
  if (s.finished) return;
  if (s.memory) {
    s.finished = true;
    return;
  }
  // Data on disk before the rename makes it visible, or a crash can leave an empty file.
  if (::fsync(s.fd) != 0) fail("cannot flush ", s.tmp.string(), ": ", std::strerror(errno));
  const int fd = s.fd;
  s.fd = -1;
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(s.tmp.c_str());
    fail("cannot close ", s.tmp.string(), ": ", std::strerror(e));
  }
  std::error_code ec;
  std::filesystem::rename(s.tmp, s.path, ec);
  if (ec) {
    ::unlink(s.tmp.c_str());
    fail("cannot rename ", s.tmp.string(), " to ", s.path.string(), ": ", ec.message());
  }
  s.finished = true;
}

namespace {

void write_all_tensors(GgufWriter& w, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                       const std::vector<GgufTensorBytes>& tensors) {
  for (const auto& [key, value] : metadata) w.add(key, value);
  for (const auto& t : tensors) w.add_tensor(t.name, t.dims, t.type);
  w.begin_data();
  for (const auto& t : tensors) w.write_tensor_data(t.bytes);
  w.finish();
}

}  // namespace

std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                           const std::vector<GgufTensorBytes>& tensors) {
  std::string out;
  GgufWriter w("<memory>");
  w.s_->memory = &out;
  write_all_tensors(w, metadata, tensors);
  return out;
}

void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorBytes>& tensors) {
  GgufWriter w(path);
  write_all_tensors(w, metadata, tensors);
}

}  // namespace tune::io

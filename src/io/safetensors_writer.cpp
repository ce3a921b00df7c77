// safetensors writer with the reference writer's byte layout (safetensors 0.8 `serialize`):
// tensors ordered by dtype descending then name, data packed in that order, compact JSON with
// __metadata__ first, header padded with spaces to a multiple of 8.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

// JSON string escaping as serde_json writes it: '"' and '\\' escaped, \b \f \n \r \t short forms,
// other control characters as \u00xx (lowercase hex), everything else (DEL, non-ASCII) verbatim.
void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

struct Layout {
  std::string prefix_and_header;  // 8-byte length + padded JSON header
  std::vector<size_t> order;      // indices into the tensors, in data order
  uint64_t data_bytes = 0;
};

Layout plan(const std::vector<TensorBytes>& tensors, const std::map<std::string, std::string>& metadata) {
  std::set<std::string_view> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") fail("safetensors writer: \"__metadata__\" is reserved and cannot name a tensor");
    if (!names.insert(t.name).second) fail("safetensors writer: duplicate tensor name \"", t.name, "\"");
    uint64_t numel = 1, bits = 0;
    bool overflow = false;
    for (uint64_t d : t.shape) overflow |= __builtin_mul_overflow(numel, d, &numel);
    overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_bits(t.dtype)), &bits);
    if (overflow) fail("safetensors writer: tensor \"", t.name, "\": shape element count overflows");
    if (bits % 8 != 0)
      fail("safetensors writer: tensor \"", t.name, "\": ", numel, " elements of ", dtype_name(t.dtype),
           " do not fill whole bytes");
    if (t.bytes.size() != bits / 8)
      fail("safetensors writer: tensor \"", t.name, "\": ", t.bytes.size(), " bytes given, ", numel, " elements of ",
           dtype_name(t.dtype), " need ", bits / 8);
  }

  Layout layout;
  layout.order.resize(tensors.size());
  std::iota(layout.order.begin(), layout.order.end(), size_t{0});
  std::sort(layout.order.begin(), layout.order.end(), [&](size_t a, size_t b) {
    const auto& ta = tensors[a];
    const auto& tb = tensors[b];
    if (ta.dtype != tb.dtype) return ta.dtype > tb.dtype;
    return ta.name < tb.name;  // char_traits<char> compares bytes as unsigned, like Rust's String
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      append_json_string(header, key);
      header += ':';
      append_json_string(header, value);
    }
    header += '}';
  }
  uint64_t offset = 0;
  for (size_t i : layout.order) {
    const auto& t = tensors[i];
    if (header.size() > 1) header += ',';
    append_json_string(header, t.name);
    header += ":{\"dtype\":\"";
    header += dtype_name(t.dtype);
    header += "\",\"shape\":[";
    for (size_t k = 0; k < t.shape.size(); ++k) {
      if (k) header += ',';
      header += std::to_string(t.shape[k]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    offset += t.bytes.size();
    header += std::to_string(offset);
    header += "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  layout.prefix_and_header.resize(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) layout.prefix_and_header[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  layout.prefix_and_header += header;
  layout.data_bytes = offset;
  return layout;
}

void write_all(int fd, const void* data, size_t size, const std::filesystem::path& tmp) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t written = ::write(fd, p, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
    }
    p += written;
    size -= static_cast<size_t>(written);
  }
}

}  // namespace

std::string serialize_safetensors(const std::vector<TensorBytes>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  Layout layout = plan(tensors, metadata);
  std::string out = std::move(layout.prefix_and_header);
  out.reserve(out.size() + layout.data_bytes);
  for (size_t i : layout.order)
    out.append(reinterpret_cast<const char*>(tensors[i].bytes.data()), tensors[i].bytes.size());
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Streams the tensors straight from the caller's buffers (a checkpoint can be many GB; building
  // it in memory first would double the peak), to a temporary sibling renamed into place.
  Layout layout = plan(tensors, metadata);
  if (path.has_parent_path()) fs::ensure_directory(path.parent_path());
  const auto tmp = fs::temp_sibling(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
  try {
    write_all(fd, layout.prefix_and_header.data(), layout.prefix_and_header.size(), tmp);
    for (size_t i : layout.order) write_all(fd, tensors[i].bytes.data(), tensors[i].bytes.size(), tmp);
    // Data on disk before the rename makes it visible, or a crash can leave an empty file.
    if (::fsync(fd) != 0) fail("cannot flush ", tmp.string(), ": ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot close ", tmp.string(), ": ", std::strerror(e));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    fail("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
  }
}

}  // namespace tune::io

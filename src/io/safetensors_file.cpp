// safetensors reader: every check of the reference `read_metadata` / `validate`, in its order, plus
// the stricter header shape of hf-interop.md (no unknown entry fields, no duplicate names).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/safetensors_header.h"
#include "tune/core/error.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference's MAX_HEADER_SIZE

// Every rejection reads "<origin>: invalid safetensors file: <problem> (<reference error>)".
[[noreturn]] void reject(const std::string& origin, const std::string& problem, std::string_view code) {
  fail(origin, ": invalid safetensors file: ", problem, " (", code, ")");
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string display_name(std::string_view name) { return str("\"", detail::printable(name), "\""); }

}  // namespace

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (address) ::munmap(address, length);
  }
};

SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string origin = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(origin, ": cannot open safetensors file: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(origin, ": cannot stat safetensors file: ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(origin, ": not a regular file");
  }
  auto mapping = std::make_unique<Mapping>();
  const auto size = static_cast<size_t>(st.st_size);
  if (size > 0) {  // mmap refuses length 0; an empty file fails the size check in parse()
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(origin, ": cannot map safetensors file: ", std::strerror(e));
    }
    mapping->address = address;
    mapping->length = size;
  }
  ::close(fd);  // the mapping keeps the file alive
  const auto* bytes = static_cast<const uint8_t*>(mapping->address);
  SafetensorsFile file = parse(std::span<const uint8_t>(bytes, size), origin);
  file.mapping_ = std::move(mapping);
  return file;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, std::string origin) {
  const uint64_t size = bytes.size();
  // 1-3: the length prefix and where the header ends.
  if (size < 8)
    reject(origin, str("file is ", size, " bytes, smaller than the 8-byte header length"), "HeaderTooSmall");
  const uint64_t n = read_u64_le(bytes.data());
  if (n > kMaxHeaderSize)
    reject(origin, str("header length ", n, " exceeds the limit of ", kMaxHeaderSize, " bytes"), "HeaderTooLarge");
  if (8 + n > size)
    reject(origin, str("header length ", n, " runs past the end of the ", size, "-byte file"), "InvalidHeaderLength");

  // 4: UTF-8, then the JSON and its shape.
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  if (size_t bad = detail::find_invalid_utf8(text); bad != std::string_view::npos)
    reject(origin, str("header is not valid UTF-8 (byte ", bad, " of the header)"), "InvalidHeader");
  detail::ParsedHeader header;
  std::string problem;
  if (!detail::parse_header_json(text, header, problem))
    reject(origin, str("bad header: ", problem), "InvalidHeaderDeserialization");

  // 5-6: sorted by offsets, the entries must tile the data buffer exactly.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(header.tensors.size());
  for (const auto& t : header.tensors) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected_begin = 0;
  for (const TensorInfo* t : by_offset) {
    const std::string name = display_name(t->name);
    if (t->begin != expected_begin || t->end < t->begin)
      reject(origin,
             str("tensor ", name, " has data_offsets [", t->begin, ", ", t->end, "]; expected it to begin at ",
                 expected_begin, " and end at or after its begin (entries must tile the data without gaps or overlaps)"),
             "InvalidOffset");
    expected_begin = t->end;
    uint64_t numel = 1;
    for (uint64_t d : t->shape)
      if (__builtin_mul_overflow(numel, d, &numel))
        reject(origin, str("tensor ", name, ": the element count of its shape overflows 64 bits"), "ValidationOverflow");
    uint64_t bits = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_bits(t->dtype)), &bits))
      reject(origin, str("tensor ", name, ": its size in bits overflows 64 bits"), "ValidationOverflow");
    if (bits % 8 != 0)
      reject(origin,
             str("tensor ", name, ": ", numel, " elements of ", dtype_name(t->dtype), " (", dtype_bits(t->dtype),
                 " bits) do not end on a byte boundary"),
             "MisalignedSlice");
    if (t->end - t->begin != bits / 8)
      reject(origin,
             str("tensor ", name, ": data_offsets span ", t->end - t->begin, " bytes but ", numel, " elements of ",
                 dtype_name(t->dtype), " need ", bits / 8),
             "TensorInvalidInfo");
  }

  // 7: the buffer ends exactly at the end of the file.
  const uint64_t data_start = 8 + n;
  const uint64_t available = size - data_start;
  if (expected_begin != available)
    reject(origin,
           expected_begin > available
               ? str("file is truncated: the tensors need ", expected_begin, " data bytes, the file holds ", available)
               : str("the tensors cover ", expected_begin, " data bytes but the file holds ", available,
                     " (trailing bytes)"),
           "MetadataIncompleteBuffer");

  SafetensorsFile file;
  file.bytes_ = bytes;
  file.origin_ = std::move(origin);
  file.tensors_ = std::move(header.tensors);
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  file.metadata_ = std::move(header.metadata);
  file.data_start_ = data_start;
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, std::string_view key) { return t.name < key; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

std::span<const uint8_t> SafetensorsFile::data(const TensorInfo& info) const {
  // Guards against a TensorInfo from another file: never hand out bytes past the buffer.
  const uint64_t available = bytes_.size() - data_start_;
  if (info.end < info.begin || info.end > available)
    fail(origin_, ": tensor ", display_name(info.name), " has data_offsets [", info.begin, ", ", info.end,
         "] outside this file's ", available, "-byte data buffer");
  return bytes_.subspan(data_start_ + info.begin, info.end - info.begin);
}

}  // namespace tune::io

#pragma once
// safetensors reader (memory-mapped, every check of the reference implementation) and writer
// (the reference writer's byte layout). Torch-free: the model module turns views into tensors.
//
// Format: u64 little-endian header length N, N bytes of JSON header, then the data buffer.
// Header: {"__metadata__": {str: str}, "<name>": {"dtype": S, "shape": [..], "data_offsets": [b, e]}}
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tune::io {

// Declared in the reference library's order (its Rust `Dtype` enum): the reference writer sorts
// tensors by this order, descending, so `<` on DType is its layout rank.
enum class DType {
  BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ,
  I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
};

std::string_view dtype_name(DType dtype);            // "F32"
std::optional<DType> parse_dtype(std::string_view);  // nullopt for an unknown string
size_t dtype_bits(DType dtype);                      // F32 -> 32, F4 -> 4

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer, end exclusive
  uint64_t end = 0;
  uint64_t numel() const;
};

// An opened, fully validated file. The bytes stay mapped for the object's lifetime; spans returned
// by data() are valid until it is destroyed. Move-only.
class SafetensorsFile {
 public:
  // Maps and validates a file. Errors (tune::Error) read
  //   "<file>: invalid safetensors file: <problem> (<reference error name>)"
  // with the reference library's check names (HeaderTooLarge, InvalidOffset, ...; docs/safetensors.md).
  // Stricter than the reference: duplicate tensor names and unknown entry fields are rejected.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates bytes already in memory (not copied: they must outlive the object). `origin` names
  // them in errors. Used by the fuzzer.
  static SafetensorsFile parse(std::span<const uint8_t> bytes, std::string origin);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
  const TensorInfo* find(std::string_view name) const;                // nullptr when absent
  std::span<const uint8_t> data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& origin() const { return origin_; }

 private:
  SafetensorsFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;  // null when parsing caller-owned bytes
  std::span<const uint8_t> bytes_;
  std::string origin_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_start_ = 0;
};

// A tensor to write: raw little-endian row-major bytes.
struct TensorBytes {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> bytes;
};

// Serialises exactly like the reference writer: tensors ordered by dtype (descending, as the
// reference does) then name, compact JSON with __metadata__ first, header padded with spaces to a
// multiple of 8. An empty metadata map writes no __metadata__ key (pass {{"format","pt"}} for HF).
// Metadata keys are written sorted (the reference's order is random beyond one key).
// Throws on duplicate names, the name "__metadata__", or a byte count that does not match
// dtype x shape (sub-byte tensors must fill whole bytes).
std::string serialize_safetensors(const std::vector<TensorBytes>& tensors,
                                  const std::map<std::string, std::string>& metadata);
// The same bytes, streamed from the caller's buffers to a temporary sibling, fsynced, renamed.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace tune::io

#pragma once
// GGUF reader (llama.cpp's model format, versions 2 and 3): memory-mapped, every read bounds-checked,
// and dequantisation of its tensor types to float32. Torch-free; docs/gguf.md.
//
// Layout (little-endian):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv_count x  { string key, u32 value_type, value }          string = u64 length + bytes
//                array value = u32 element_type, u64 count, count x element
//   tensor_count x { string name, u32 n_dims, n_dims x u64 dim, u32 ggml_type, u64 offset }
//   padding to general.alignment (default 32), then the data section; offsets are relative to it.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tune::io {

// Metadata value types, numbered as in the format.
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType type);  // "UINT32"

// A metadata value: a scalar, a string or an array (of scalars, strings or arrays). Integers keep
// their declared width in type(); their value is held as uint64_t (unsigned types) or int64_t.
class GgufValue {
 public:
  using Array = std::vector<GgufValue>;
  GgufValue() = default;
  static GgufValue unsigned_int(GgufValueType type, uint64_t v);
  static GgufValue signed_int(GgufValueType type, int64_t v);
  static GgufValue floating(GgufValueType type, double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue array(GgufValueType element_type, Array items);

  GgufValueType type() const { return type_; }
  GgufValueType element_type() const { return element_type_; }  // arrays only
  bool is_array() const { return type_ == GgufValueType::ARRAY; }
  bool is_string() const { return type_ == GgufValueType::STRING; }
  bool is_integer() const;  // any signed or unsigned integer type (not BOOL)
  bool is_float() const { return type_ == GgufValueType::FLOAT32 || type_ == GgufValueType::FLOAT64; }

  // Typed access; nullopt / nullptr when the value has another type (or, for as_uint / as_int, a
  // value the result type cannot hold). as_double accepts integers too.
  std::optional<uint64_t> as_uint() const;
  std::optional<int64_t> as_int() const;
  std::optional<double> as_double() const;
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;
  const Array* as_array() const;

  // Short human-readable form for messages and dumps (arrays: the first few items and the count).
  std::string describe(size_t max_items = 4) const;

 private:
  GgufValueType type_ = GgufValueType::UINT8;
  GgufValueType element_type_ = GgufValueType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> v_ = uint64_t{0};
};

// ggml tensor types, numbered as in ggml.h (the gaps are types ggml removed).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // "Q4_K"
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t type_size;     // bytes per block
  bool dequantizable;     // dequantize() supports it
};
// The traits of a type id, nullopt for an id ggml does not define (or has removed).
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type);
const GgmlTypeTraits& ggml_traits(GgmlType type);
std::string_view ggml_type_name(GgmlType type);

// Dequantises blocks of `type` to float32: `bytes` must hold exactly out.size() / block_size
// blocks. Throws tune::Error for a type dequantize() does not support or mismatched sizes.
// Results equal the `gguf` Python package's dequantiser bit for bit (the same float32 operations in
// the same order; the file is compiled without FMA contraction).
void dequantize(GgmlType type, std::span<const uint8_t> bytes, std::span<float> out);

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order: dims[0] varies fastest (the row length)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;  // computed from dims and type
  uint64_t numel() const;
  // Row-major shape as numpy / torch see it (dims reversed): token_embd [576, 49152] -> [49152, 576].
  std::vector<uint64_t> shape() const;
};

// An opened, fully validated GGUF file. The bytes stay mapped for the object's lifetime. Move-only.
class GgufFile {
 public:
  // Errors (tune::Error) read "<file>: invalid GGUF file: <problem> (at byte N)"; the problem names
  // the key, array or tensor being read. Rejected: bad magic; version other than 2 or 3; counts,
  // string lengths or array lengths that run past the end of the file; unknown value types; arrays
  // nested deeper than 8; duplicate keys or tensor names; general.alignment not a power of two
  // UINT32; more than 4 dims; element counts that overflow; unknown ggml types; rows not a multiple
  // of the block size; offsets not aligned; tensor data past the end of the file or overlapping.
  static GgufFile open(const std::filesystem::path& path);
  // Validates bytes already in memory (not copied: they must outlive the object).
  static GgufFile parse(std::span<const uint8_t> bytes, std::string origin);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_start_; }  // byte offset of the data section
  const std::string& origin() const { return origin_; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<std::string>& metadata_order() const { return metadata_order_; }  // file order
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  // Typed look-ups: nullopt when the key is absent; tune::Error naming the file and key when it is
  // present with another type.
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // FLOAT32/64 or an integer
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // An array of strings / of integers (any integer element type).
  std::optional<std::vector<std::string>> get_strings(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_ints(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find_tensor(std::string_view name) const;      // nullptr when absent
  std::span<const uint8_t> data(const GgufTensorInfo& info) const;     // the tensor's raw bytes
  // The tensor as float32 in row-major order of shape() (throws for types not dequantizable).
  std::vector<float> dequantize(const GgufTensorInfo& info) const;

 private:
  GgufFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  std::string origin_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<std::string> metadata_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace tune::io

// dtype names and widths of the safetensors format (hf-interop.md section 1).
#include <array>
#include <cstddef>

#include "tune/core/error.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view name;
  size_t bits;
};

// Same order as the enum, so a row is found by index.
constexpr std::array<DTypeRow, 22> kDTypes = {{
    {DType::BOOL, "BOOL", 8},
    {DType::F4, "F4", 4},
    {DType::F6_E2M3, "F6_E2M3", 6},
    {DType::F6_E3M2, "F6_E3M2", 6},
    {DType::U8, "U8", 8},
    {DType::I8, "I8", 8},
    {DType::F8_E5M2, "F8_E5M2", 8},
    {DType::F8_E4M3, "F8_E4M3", 8},
    {DType::F8_E8M0, "F8_E8M0", 8},
    {DType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {DType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {DType::I16, "I16", 16},
    {DType::U16, "U16", 16},
    {DType::F16, "F16", 16},
    {DType::BF16, "BF16", 16},
    {DType::I32, "I32", 32},
    {DType::U32, "U32", 32},
    {DType::F32, "F32", 32},
    {DType::C64, "C64", 64},
    {DType::F64, "F64", 64},
    {DType::I64, "I64", 64},
    {DType::U64, "U64", 64},
}};

constexpr bool rows_follow_enum() {
  for (size_t i = 0; i < kDTypes.size(); ++i)
    if (static_cast<size_t>(kDTypes[i].dtype) != i) return false;
  return true;
}
static_assert(rows_follow_enum(), "kDTypes must list the DType values in declaration order");

const DTypeRow& row(DType dtype) {
  auto index = static_cast<size_t>(dtype);
  if (index >= kDTypes.size()) fail("invalid DType value ", index);
  return kDTypes[index];
}

}  // namespace

std::string_view dtype_name(DType dtype) { return row(dtype).name; }

size_t dtype_bits(DType dtype) { return row(dtype).bits; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.dtype;
  return std::nullopt;
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // a validated file guarantees this does not overflow
  return n;
}

}  // namespace tune::io

#include "tensor_bytes.h"

#include <cstring>

#include "tune/core/error.h"

namespace tune::lora::detail {

torch::Tensor read_tensor(const io::SafetensorsFile& file, const io::TensorInfo& info) {
  torch::ScalarType type;
  switch (info.dtype) {
    case io::DType::F32: type = torch::kFloat32; break;
    case io::DType::F16: type = torch::kFloat16; break;
    case io::DType::BF16: type = torch::kBFloat16; break;
    case io::DType::F64: type = torch::kFloat64; break;
    default:
      fail(file.origin(), ": tensor ", info.name, " has dtype ", io::dtype_name(info.dtype),
           ", expected a floating point type (F32, BF16, F16, F64)");
  }
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto out = torch::empty(shape, torch::TensorOptions().dtype(type));
  auto bytes = file.data(info);
  TUNE_CHECK(bytes.size() == static_cast<size_t>(out.nbytes()), file.origin(), ": tensor ", info.name,
             " holds ", bytes.size(), " bytes, expected ", out.nbytes());
  // Copied rather than wrapped: the mapping dies with the file and may be unaligned.
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

io::TensorBytes float32_entry(const std::string& name, const torch::Tensor& tensor, torch::Tensor& holder) {
  holder = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  io::TensorBytes entry;
  entry.name = name;
  entry.dtype = io::DType::F32;
  for (int64_t d : holder.sizes()) entry.shape.push_back(static_cast<uint64_t>(d));
  entry.bytes = {static_cast<const uint8_t*>(holder.data_ptr()), static_cast<size_t>(holder.nbytes())};
  return entry;
}

}  // namespace tune::lora::detail

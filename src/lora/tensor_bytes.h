#pragma once
// Between torch tensors and safetensors entries (the adapter file only needs float types).
#include <torch/torch.h>

#include <string>

#include "tune/io/safetensors.h"

namespace tune::lora::detail {

// A CPU copy of `info` from `file` in its stored dtype (F32, F16, BF16, F64). Errors name the
// file and tensor.
torch::Tensor read_tensor(const io::SafetensorsFile& file, const io::TensorInfo& info);

// The bytes of a contiguous CPU float32 tensor, kept alive by `holder`.
io::TensorBytes float32_entry(const std::string& name, const torch::Tensor& tensor, torch::Tensor& holder);

}  // namespace tune::lora::detail

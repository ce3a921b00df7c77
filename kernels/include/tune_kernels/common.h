#pragma once
// Shared vocabulary of the torch-free kernels: element types and the launcher convention.
// Every launcher takes raw device pointers and a stream, launches asynchronously and returns the
// launch's cudaError_t (cudaSuccess for an empty problem). No torch header may be included here.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tune::kernels {

// Element type of a floating-point input that a kernel reads (or a gradient it writes).
enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };

}  // namespace tune::kernels

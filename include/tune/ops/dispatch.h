#pragma once
// Where the CUDA kernels plug in. Every op in tune::ops has a LibTorch reference implementation
// (any device, also the test oracle of the kernels); a CUDA tensor takes the kernel path only when
// the build has the kernels (TUNE_WITH_CUDA_KERNELS) and they are not switched off at run time.
#include <torch/torch.h>

namespace tune::ops {

// True when this binary was built with the CUDA kernels and the environment variable
// TUNE_DISABLE_CUDA_KERNELS is unset or "0" (set it to compare against the reference).
bool cuda_kernels_available();

// The one dispatch test every op uses: `if (use_cuda_kernels(x)) return kernel_path(...);`
inline bool use_cuda_kernels(const torch::Tensor& t) { return t.is_cuda() && cuda_kernels_available(); }

}  // namespace tune::ops

#include "tune/ops/dispatch.h"

#include <cstdlib>
#include <string_view>

namespace tune::ops {

bool cuda_kernels_available() {
#ifdef TUNE_WITH_CUDA_KERNELS
  static const bool enabled = [] {
    const char* off = std::getenv("TUNE_DISABLE_CUDA_KERNELS");
    return off == nullptr || std::string_view(off) == "0" || std::string_view(off).empty();
  }();
  return enabled;
#else
  return false;
#endif
}

}  // namespace tune::ops

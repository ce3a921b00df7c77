#include "tune/ops/advantages.h"

#include "tune/core/error.h"
#ifdef TUNE_WITH_CUDA_KERNELS
#include "ops/cuda_bindings.h"
#include "tune/ops/dispatch.h"
#endif

namespace tune::ops {

using torch::Tensor;

GaeResult gae(const Tensor& rewards, const Tensor& values, const Tensor& mask, double gamma, double lambda) {
  TUNE_CHECK(rewards.defined() && values.defined() && mask.defined(), "gae: undefined tensor");
  TUNE_CHECK(rewards.dim() == 2, "gae: rewards must be [B, T], got ", rewards.sizes());
  TUNE_CHECK(values.sizes() == rewards.sizes() && mask.sizes() == rewards.sizes(), "gae: shapes differ: rewards ",
             rewards.sizes(), ", values ", values.sizes(), ", mask ", mask.sizes());
  TUNE_CHECK(gamma >= 0 && gamma <= 1 && lambda >= 0 && lambda <= 1, "gae: gamma and lambda must be in [0, 1], got ",
             gamma, " and ", lambda);
#ifdef TUNE_WITH_CUDA_KERNELS
  if (use_cuda_kernels(rewards) && rewards.scalar_type() != torch::kFloat64)
    return cuda::gae(rewards, values, mask, gamma, lambda);
#endif
  torch::NoGradGuard no_grad;
  const auto dtype = rewards.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor r = rewards.to(dtype), v = values.to(dtype);  // [B, T]
  Tensor valid = mask.scalar_type() == torch::kBool ? mask : mask != 0;    // [B, T]
  const int64_t batch = r.size(0), steps = r.size(1);
  Tensor adv = torch::zeros_like(r);
  Tensor next_value = torch::zeros({batch}, r.options());  // value of the next valid position, per sequence
  Tensor next_adv = torch::zeros({batch}, r.options());
  for (int64_t t = steps - 1; t >= 0; --t) {
    Tensor m = valid.select(1, t);                                          // [B]
    Tensor v_t = v.select(1, t);
    Tensor delta = r.select(1, t) + gamma * next_value - v_t;
    Tensor a_t = delta + (gamma * lambda) * next_adv;
    // A masked position leaves the carried state untouched, as if it were not in the sequence.
    next_adv = torch::where(m, a_t, next_adv);
    next_value = torch::where(m, v_t, next_value);
    adv.select(1, t).copy_(torch::where(m, a_t, torch::zeros({}, a_t.options())));
  }
  Tensor returns = torch::where(valid, adv + v, torch::zeros({}, adv.options()));
  return {adv, returns};
}

Tensor group_advantages(const Tensor& rewards, int64_t group_size, bool scale_by_std, double eps) {
  TUNE_CHECK(rewards.defined() && rewards.dim() == 1, "group_advantages: rewards must be 1-D [B * G]");
  TUNE_CHECK(group_size >= 1, "group_advantages: group size must be >= 1, got ", group_size);
  TUNE_CHECK(rewards.size(0) % group_size == 0, "group_advantages: ", rewards.size(0),
             " rewards do not split into groups of ", group_size);
#ifdef TUNE_WITH_CUDA_KERNELS
  if (use_cuda_kernels(rewards) && rewards.scalar_type() != torch::kFloat64)
    return cuda::group_advantages(rewards, group_size, scale_by_std, eps);
#endif
  torch::NoGradGuard no_grad;
  const auto dtype = rewards.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor r = rewards.to(dtype).view({-1, group_size});  // [B, G]
  Tensor adv = r - r.mean(1, /*keepdim=*/true);
  if (scale_by_std && group_size > 1) adv = adv / (r.std(1, /*unbiased=*/true, /*keepdim=*/true) + eps);
  return adv.reshape({-1});
}

}  // namespace tune::ops

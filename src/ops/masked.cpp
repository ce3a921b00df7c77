#include "tune/ops/masked.h"

#include "tune/core/error.h"

namespace tune::ops {

using torch::Tensor;

namespace {

// Bool mask of x's shape; the values of x at masked positions are replaced by 0 so that a nan
// there cannot leak into a sum (nan * 0 is nan).
Tensor valid_mask(const Tensor& x, const Tensor& mask, const char* op) {
  TUNE_CHECK(x.defined() && mask.defined(), op, ": undefined tensor");
  TUNE_CHECK(x.sizes() == mask.sizes(), op, ": mask shape ", mask.sizes(), " differs from the values' shape ", x.sizes());
  TUNE_CHECK(x.device() == mask.device(), op, ": mask is on ", mask.device(), " but the values are on ", x.device());
  TUNE_CHECK(x.is_floating_point(), op, ": values must be floating point, got ", x.scalar_type());
  return mask.scalar_type() == torch::kBool ? mask : mask != 0;
}

Tensor zeroed(const Tensor& x, const Tensor& valid) { return torch::where(valid, x, torch::zeros({}, x.options())); }

}  // namespace

Tensor masked_sum(const Tensor& x, const Tensor& mask, std::optional<int64_t> dim) {
  Tensor valid = valid_mask(x, mask, "masked_sum");
  Tensor v = zeroed(x, valid);
  return dim ? v.sum(*dim) : v.sum();
}

Tensor masked_mean(const Tensor& x, const Tensor& mask, std::optional<int64_t> dim) {
  Tensor valid = valid_mask(x, mask, "masked_mean");
  Tensor v = zeroed(x, valid);
  Tensor count = dim ? valid.sum(*dim) : valid.sum();
  Tensor total = dim ? v.sum(*dim) : v.sum();
  return total / count.clamp_min(1).to(x.scalar_type());
}

Tensor masked_var(const Tensor& x, const Tensor& mask) {
  Tensor valid = valid_mask(x, mask, "masked_var");
  Tensor n = valid.sum().to(x.scalar_type());
  Tensor mean = zeroed(x, valid).sum() / n.clamp_min(1);
  Tensor sq = zeroed((x - mean).square(), valid).sum();
  return torch::where(n >= 2, sq / (n - 1).clamp_min(1), torch::zeros({}, x.options()));
}

Tensor masked_whiten(const Tensor& x, const Tensor& mask, bool shift_mean, double eps) {
  Tensor valid = valid_mask(x, mask, "masked_whiten");
  Tensor n = valid.sum();
  Tensor mean = masked_mean(x, valid);
  Tensor var = masked_var(x, valid);
  Tensor w = (x - mean) * torch::rsqrt(var + eps);
  if (!shift_mean) w = w + mean;
  // With fewer than two valid values there is no spread to normalise by: no signal, all zeros.
  return torch::where(valid & (n >= 2), w, torch::zeros({}, x.options()));
}

}  // namespace tune::ops

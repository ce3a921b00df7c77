#include "tune/algo/value_loss.h"

#include <vector>

#include "tune/core/error.h"
#include "tune/ops/masked.h"

namespace tune::algo {

using torch::Tensor;

namespace {

void check_same(const Tensor& t, const Tensor& values, const char* what, const char* name) {
  TUNE_CHECK(t.defined(), what, ": ", name, " is undefined");
  TUNE_CHECK(t.sizes() == values.sizes(), what, ": ", name, " shape ", t.sizes(), " differs from values ", values.sizes());
  TUNE_CHECK(t.device() == values.device(), what, ": ", name, " on ", t.device(), ", values on ", values.device());
}

}  // namespace

ValueLossResult value_loss(const ValueLossConfig& c, const Tensor& values, const Tensor& old_values,
                           const Tensor& returns, const Tensor& mask) {
  TUNE_CHECK(values.defined() && values.dim() == 2 && values.is_floating_point(),
             "value loss: values must be a floating [N, T] tensor");
  check_same(old_values, values, "value loss", "old_values");
  check_same(returns, values, "value loss", "returns");
  check_same(mask, values, "value loss", "mask");
  if (c.vf_coef < 0) usage_fail("value loss: vf_coef must be >= 0, got ", c.vf_coef);
  const auto dtype = values.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const Tensor valid = mask.scalar_type() == torch::kBool ? mask : mask != 0;
  const Tensor zero = torch::zeros({}, values.options().dtype(dtype));
  auto clean = [&](const Tensor& x) { return torch::where(valid, x.to(dtype), zero); };

  const Tensor v = clean(values), v_old = clean(old_values.detach()), ret = clean(returns.detach());  // [N, T]
  Tensor err = (v - ret).square();
  Tensor term = err;
  Tensor clipped_larger = torch::zeros_like(valid);
  if (c.clip > 0) {
    Tensor v_clip = v_old + (v - v_old).clamp(-c.clip, c.clip);
    Tensor err_clip = (v_clip - ret).square();
    clipped_larger = err_clip > err;
    term = torch::max(err, err_clip);
  }
  ValueLossResult out;
  out.loss_sum = (c.vf_coef * 0.5) * torch::where(valid, term, zero).sum();
  auto sum = [&](const Tensor& x) { return torch::where(valid, x.to(dtype), zero).sum().detach().to(torch::kFloat64); };
  Tensor host = torch::stack({valid.sum().to(torch::kFloat64), out.loss_sum.detach().to(torch::kFloat64),
                              sum(clipped_larger), sum(v), sum(ret), sum(err)})
                    .cpu();
  const double* h = host.data_ptr<double>();
  out.count = h[0];
  out.metrics["value/loss"] = {h[1], h[0]};
  out.metrics["value/clip_frac"] = {h[2], h[0]};
  out.metrics["value/mean"] = {h[3], h[0]};
  out.metrics["returns/mean"] = {h[4], h[0]};
  out.metrics["value/error"] = {h[5], h[0]};
  return out;
}

double explained_variance(const Tensor& values, const Tensor& returns, const Tensor& mask) {
  TUNE_CHECK(values.defined() && values.is_floating_point(), "explained_variance: values must be floating point");
  check_same(returns, values, "explained_variance", "returns");
  check_same(mask, values, "explained_variance", "mask");
  torch::NoGradGuard no_grad;
  Tensor v = values.to(torch::kFloat64), r = returns.to(torch::kFloat64);
  double var_r = ops::masked_var(r, mask).item<double>();
  if (!(var_r > 0)) return 0.0;
  return 1.0 - ops::masked_var(r - v, mask).item<double>() / var_r;
}

}  // namespace tune::algo

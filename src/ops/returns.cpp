#include "tune/ops/returns.h"

#include "tune/core/error.h"
#include "tune/ops/advantages.h"
#include "tune/ops/masked.h"

namespace tune::ops {

using torch::Tensor;

namespace {

torch::ScalarType work_dtype(const Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

Tensor as_bool(const Tensor& m) { return m.scalar_type() == torch::kBool ? m : m != 0; }

}  // namespace

Tensor token_rewards(const Tensor& score, const Tensor& logp, const Tensor& ref_logp, const Tensor& mask,
                     const Tensor& ended_with_eos, const TokenRewardOptions& o) {
  TUNE_CHECK(score.defined() && logp.defined() && ref_logp.defined() && mask.defined(), "token_rewards: undefined tensor");
  TUNE_CHECK(logp.dim() == 2, "token_rewards: logp must be [N, T], got ", logp.sizes());
  TUNE_CHECK(ref_logp.sizes() == logp.sizes() && mask.sizes() == logp.sizes(), "token_rewards: shapes differ: logp ",
             logp.sizes(), ", ref_logp ", ref_logp.sizes(), ", mask ", mask.sizes());
  TUNE_CHECK(score.dim() == 1 && score.size(0) == logp.size(0), "token_rewards: score must be [", logp.size(0),
             "], got ", score.sizes());
  TUNE_CHECK(!ended_with_eos.defined() || ended_with_eos.sizes() == score.sizes(),
             "token_rewards: ended_with_eos must be [", logp.size(0), "], got ", ended_with_eos.sizes());
  TUNE_CHECK(o.score_clip >= 0 && o.kl_coef >= 0, "token_rewards: kl_coef and score_clip must be >= 0");
  torch::NoGradGuard no_grad;
  const auto dtype = work_dtype(logp);
  Tensor valid = as_bool(mask);                                                    // [N, T]
  Tensor r = -o.kl_coef * kl_penalty(logp.to(dtype), ref_logp.to(dtype), valid, o.kl_estimator);
  Tensor s = score.to(dtype);                                                      // [N]
  if (ended_with_eos.defined() && o.missing_eos_penalty != 0)
    s = torch::where(as_bool(ended_with_eos), s, s - o.missing_eos_penalty);
  if (o.score_clip > 0) s = s.clamp(-o.score_clip, o.score_clip);
  // The last valid position of each row: argmax of (t + 1) over valid positions.
  const int64_t steps = logp.size(1);
  Tensor positions = torch::arange(1, steps + 1, valid.options().dtype(torch::kLong));  // [T]
  Tensor last = (valid.to(torch::kLong) * positions).argmax(1, /*keepdim=*/true);      // [N, 1]
  Tensor has_tokens = valid.any(1);                                                     // [N]
  Tensor zero = torch::zeros({}, r.options());
  r = r.scatter_add(1, last, torch::where(has_tokens, s, zero).unsqueeze(1));
  return torch::where(valid, r, zero);
}

Tensor discounted_returns(const Tensor& rewards, const Tensor& mask, double gamma) {
  TUNE_CHECK(rewards.defined(), "discounted_returns: undefined rewards");
  return gae(rewards, torch::zeros_like(rewards), mask, gamma, 1.0).advantages;
}

Tensor reinforce_pp_advantages(const Tensor& rewards, const Tensor& mask, double gamma, double eps) {
  torch::NoGradGuard no_grad;
  return masked_whiten(discounted_returns(rewards, mask, gamma), mask, /*shift_mean=*/true, eps);
}

}  // namespace tune::ops

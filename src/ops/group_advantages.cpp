// The group family of advantage estimators with excluded samples (GRPO, Dr. GRPO, batch std, RLOO).
#include <limits>

#include "tune/core/error.h"
#include "tune/ops/advantages.h"

namespace tune::ops {

using torch::Tensor;

GroupBaseline parse_group_baseline(std::string_view name) {
  if (name == "mean") return GroupBaseline::mean;
  if (name == "leave_one_out" || name == "rloo") return GroupBaseline::leave_one_out;
  usage_fail("unknown advantage baseline '", name, "' (expected mean or leave_one_out)");
}

RewardScale parse_reward_scale(std::string_view name) {
  if (name == "group") return RewardScale::group;
  if (name == "batch") return RewardScale::batch;
  if (name == "none") return RewardScale::none;
  usage_fail("unknown reward scaling '", name, "' (expected group, batch or none)");
}

std::string_view group_baseline_name(GroupBaseline baseline) {
  return baseline == GroupBaseline::mean ? "mean" : "leave_one_out";
}

std::string_view reward_scale_name(RewardScale scale) {
  switch (scale) {
    case RewardScale::group: return "group";
    case RewardScale::batch: return "batch";
    case RewardScale::none: return "none";
  }
  return "?";
}

namespace {

void check_group_inputs(const Tensor& rewards, int64_t group_size, const Tensor& valid, const char* op) {
  TUNE_CHECK(rewards.defined() && rewards.dim() == 1, op, ": rewards must be 1-D [B * G]");
  TUNE_CHECK(group_size >= 1, op, ": group size must be >= 1, got ", group_size);
  TUNE_CHECK(rewards.size(0) % group_size == 0, op, ": ", rewards.size(0), " rewards do not split into groups of ",
             group_size);
  if (valid.defined()) {
    TUNE_CHECK(valid.sizes() == rewards.sizes(), op, ": valid mask shape ", valid.sizes(), " differs from rewards ",
               rewards.sizes());
    TUNE_CHECK(valid.device() == rewards.device(), op, ": valid mask on ", valid.device(), ", rewards on ",
               rewards.device());
  }
}

// [B, G] bool
Tensor valid_members(const Tensor& rewards, int64_t group_size, const Tensor& valid) {
  if (!valid.defined()) return torch::ones({rewards.size(0) / group_size, group_size}, rewards.options().dtype(torch::kBool));
  return (valid.scalar_type() == torch::kBool ? valid : valid != 0).view({-1, group_size});
}

// Unbiased variance over the set entries of m along `dim` (all entries when dim < 0); 0 with fewer than two.
Tensor masked_unbiased_var(const Tensor& x, const Tensor& m, int64_t dim) {
  Tensor zero = torch::zeros({}, x.options());
  Tensor n = dim < 0 ? m.sum().to(x.scalar_type()) : m.sum(dim, true).to(x.scalar_type());
  Tensor xs = torch::where(m, x, zero);
  Tensor mean = (dim < 0 ? xs.sum() : xs.sum(dim, true)) / n.clamp_min(1);
  Tensor sq = torch::where(m, (x - mean).square(), zero);
  Tensor ss = dim < 0 ? sq.sum() : sq.sum(dim, true);
  return torch::where(n >= 2, ss / (n - 1).clamp_min(1), zero);
}

}  // namespace

Tensor group_advantages(const Tensor& rewards, const GroupAdvantageOptions& o, const Tensor& valid) {
  check_group_inputs(rewards, o.group_size, valid, "group_advantages");
  TUNE_CHECK(o.eps >= 0, "group_advantages: eps must be >= 0, got ", o.eps);
  // The kernel-backed form: all samples valid, group mean, group std or none.
  if (!valid.defined() && o.baseline == GroupBaseline::mean && o.scale != RewardScale::batch)
    return group_advantages(rewards, o.group_size, o.scale == RewardScale::group, o.eps);

  torch::NoGradGuard no_grad;
  const auto dtype = rewards.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor r = rewards.to(dtype).view({-1, o.group_size});  // [B, G]
  Tensor m = valid_members(rewards, o.group_size, valid);  // [B, G]
  Tensor zero = torch::zeros({}, r.options());
  r = torch::where(m, r, zero);  // an excluded reward may be nan: it must not reach any sum
  Tensor n = m.sum(1, true).to(dtype);  // [B, 1] valid members per group
  Tensor sum = r.sum(1, true);
  Tensor adv = o.baseline == GroupBaseline::mean ? r - sum / n.clamp_min(1)
                                                 : r - (sum - r) / (n - 1).clamp_min(1);  // mean of the others
  if (o.scale == RewardScale::group) adv = adv / (masked_unbiased_var(r, m, 1).sqrt() + o.eps);
  if (o.scale == RewardScale::batch) adv = adv / (masked_unbiased_var(r, m, -1).sqrt() + o.eps);
  return torch::where(m & (n >= 2), adv, zero).reshape({-1});
}

Tensor zero_variance_groups(const Tensor& rewards, int64_t group_size, const Tensor& valid) {
  check_group_inputs(rewards, group_size, valid, "zero_variance_groups");
  torch::NoGradGuard no_grad;
  Tensor r = rewards.to(torch::kFloat64).view({-1, group_size});  // [B, G]
  Tensor m = valid_members(rewards, group_size, valid);
  const double inf = std::numeric_limits<double>::infinity();
  Tensor hi = torch::where(m, r, torch::full({}, -inf, r.options())).amax(1);  // [B]
  Tensor lo = torch::where(m, r, torch::full({}, inf, r.options())).amin(1);
  return (m.sum(1) < 2) | (hi <= lo);
}

}  // namespace tune::ops

#include "tune/algo/policy_loss.h"

#include <limits>
#include <vector>

#include "tune/core/error.h"

namespace tune::algo {

using torch::Tensor;

PolicyObjective parse_policy_objective(std::string_view name) {
  if (name == "clip") return PolicyObjective::clip;
  if (name == "cispo") return PolicyObjective::cispo;
  usage_fail("unknown policy objective '", name, "' (expected clip or cispo)");
}

RatioLevel parse_ratio_level(std::string_view name) {
  if (name == "token") return RatioLevel::token;
  if (name == "sequence" || name == "gspo") return RatioLevel::sequence;
  usage_fail("unknown importance ratio level '", name, "' (expected token or sequence)");
}

LossAggregation parse_loss_aggregation(std::string_view name) {
  if (name == "token_mean" || name == "token-mean" || name == "dapo" || name == "bnpo") return LossAggregation::token_mean;
  if (name == "seq_mean_token_mean" || name == "seq-mean-token-mean" || name == "grpo")
    return LossAggregation::seq_mean_token_mean;
  if (name == "seq_mean_token_sum_norm" || name == "seq-mean-token-sum-norm" || name == "dr_grpo")
    return LossAggregation::seq_mean_token_sum_norm;
  usage_fail("unknown loss aggregation '", name,
             "' (expected token_mean, seq_mean_token_mean or seq_mean_token_sum_norm; or TRL's dapo, bnpo, grpo, "
             "dr_grpo)");
}

std::string_view policy_objective_name(PolicyObjective objective) {
  return objective == PolicyObjective::clip ? "clip" : "cispo";
}

std::string_view ratio_level_name(RatioLevel level) { return level == RatioLevel::token ? "token" : "sequence"; }

std::string_view loss_aggregation_name(LossAggregation aggregation) {
  switch (aggregation) {
    case LossAggregation::token_mean: return "token_mean";
    case LossAggregation::seq_mean_token_mean: return "seq_mean_token_mean";
    case LossAggregation::seq_mean_token_sum_norm: return "seq_mean_token_sum_norm";
  }
  return "?";
}

namespace {

Tensor as_bool(const Tensor& m) { return m.scalar_type() == torch::kBool ? m : m != 0; }

void check_config(const PolicyLossConfig& c) {
  if (c.clip_low < 0 || c.clip_high < 0)
    usage_fail("policy loss: clip_low and clip_high must be >= 0, got ", c.clip_low, " and ", c.clip_high);
  if (c.dual_clip != 0 && c.dual_clip <= 1)
    usage_fail("policy loss: dual_clip must be > 1 (3 is usual) or 0 for off, got ", c.dual_clip);
  if (c.dual_clip != 0 && c.objective != PolicyObjective::clip)
    usage_fail("policy loss: dual_clip applies to the clip objective only, not ", policy_objective_name(c.objective));
  if (c.beta < 0) usage_fail("policy loss: beta must be >= 0, got ", c.beta);
  if (c.aggregation == LossAggregation::seq_mean_token_sum_norm && c.max_completion_length <= 0)
    usage_fail("policy loss: seq_mean_token_sum_norm (Dr. GRPO) divides by max_completion_length, which must be > 0");
}

// The count as a tensor (no device sync), for the one transfer at the end of policy_loss.
Tensor count_tensor(const PolicyLossConfig& c, const Tensor& valid) {
  switch (c.aggregation) {
    case LossAggregation::token_mean: return valid.sum().to(torch::kFloat64);
    case LossAggregation::seq_mean_token_mean: return valid.any(1).sum().to(torch::kFloat64);
    case LossAggregation::seq_mean_token_sum_norm:
      return valid.any(1).sum().to(torch::kFloat64) * static_cast<double>(c.max_completion_length);
  }
  return {};
}

void check_mask(const Tensor& mask) {
  TUNE_CHECK(mask.defined() && mask.dim() == 2, "policy loss: mask must be [N, T]",
             mask.defined() ? tune::str(", got ", mask.sizes()) : std::string());
}

void check_like(const Tensor& t, const Tensor& logp, const char* name) {
  TUNE_CHECK(t.sizes() == logp.sizes(), "policy loss: ", name, " shape ", t.sizes(), " differs from logp ", logp.sizes());
  TUNE_CHECK(t.device() == logp.device(), "policy loss: ", name, " is on ", t.device(), ", logp on ", logp.device());
}

void check_inputs(const PolicyLossConfig& c, const PolicyLossInputs& in) {
  TUNE_CHECK(in.logp.defined() && in.logp.dim() == 2, "policy loss: logp must be [N, T]");
  TUNE_CHECK(in.logp.is_floating_point(), "policy loss: logp must be floating point, got ", in.logp.scalar_type());
  check_mask(in.mask);
  check_like(in.mask, in.logp, "mask");
  if (in.old_logp.defined()) check_like(in.old_logp, in.logp, "old_logp");
  TUNE_CHECK(in.advantages.defined(), "policy loss: advantages are required");
  TUNE_CHECK((in.advantages.dim() == 1 && in.advantages.size(0) == in.logp.size(0)) ||
                 in.advantages.sizes() == in.logp.sizes(),
             "policy loss: advantages must be [N] or [N, T] with N, T = ", in.logp.sizes(), ", got ",
             in.advantages.sizes());
  if (c.beta > 0) {
    TUNE_CHECK(in.ref_logp.defined(), "policy loss: beta = ", c.beta, " needs the reference log-probs (ref_logp)");
    check_like(in.ref_logp, in.logp, "ref_logp");
  }
  if (c.entropy_coef != 0) TUNE_CHECK(in.entropy.defined(), "policy loss: entropy_coef needs the per-token entropy");
  if (in.entropy.defined()) check_like(in.entropy, in.logp, "entropy");
}

// Named scalars gathered on the device and copied to the host in one transfer.
struct MetricTensors {
  std::vector<std::string> names;
  std::vector<Tensor> sums, counts;
  void add(std::string name, const Tensor& sum, const Tensor& count) {
    names.push_back(std::move(name));
    sums.push_back(sum.detach().to(torch::kFloat64).reshape({}));
    counts.push_back(count.detach().to(torch::kFloat64).reshape({}));
  }
};

}  // namespace

double policy_loss_count(const PolicyLossConfig& config, const Tensor& mask) {
  check_mask(mask);
  check_config(config);
  return count_tensor(config, as_bool(mask)).item<double>();
}

PolicyLossResult policy_loss(const PolicyLossConfig& c, const PolicyLossInputs& in) {
  check_config(c);
  check_inputs(c, in);
  const auto dtype = in.logp.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const Tensor valid = as_bool(in.mask);  // [N, T]
  const Tensor zero = torch::zeros({}, in.logp.options().dtype(dtype));
  // Masked positions are zeroed first: a nan or inf there (padding) must not reach exp, whose
  // backward would turn it into a nan gradient even where the loss ignores it.
  auto clean = [&](const Tensor& x) { return torch::where(valid, x.to(dtype), zero); };

  const Tensor logp = clean(in.logp);                                                // [N, T]
  const Tensor old = in.old_logp.defined() ? clean(in.old_logp.detach()) : logp.detach();
  const Tensor adv = clean((in.advantages.dim() == 1 ? in.advantages.unsqueeze(1) : in.advantages).detach().expand_as(logp));
  const Tensor tokens = valid.sum(1).to(dtype);                                      // [N]
  const Tensor token_log_ratio = (logp - old).detach();

  Tensor log_ratio = logp - old;
  if (c.ratio_level == RatioLevel::sequence) {
    Tensor seq = token_log_ratio.sum(1, true) / tokens.clamp_min(1).unsqueeze(1);   // [N, 1]
    log_ratio = seq + (logp - logp.detach());  // value s_i, gradient of s_i / |o_i| per token
  }
  if (c.log_ratio_clamp > 0) log_ratio = log_ratio.clamp(-c.log_ratio_clamp, c.log_ratio_clamp);
  const Tensor ratio = torch::exp(log_ratio);                                        // [N, T]

  Tensor pg, low, high, dual;
  if (c.objective == PolicyObjective::clip) {
    Tensor clipped = ratio.clamp(1.0 - c.clip_low, 1.0 + c.clip_high);
    pg = torch::max(-adv * ratio, -adv * clipped);
    low = (ratio < 1.0 - c.clip_low) & (adv < 0);
    high = (ratio > 1.0 + c.clip_high) & (adv > 0);
    if (c.dual_clip > 0) {
      Tensor cap = -c.dual_clip * adv;
      dual = (adv < 0) & (pg > cap);
      pg = torch::where(adv < 0, torch::min(pg, cap), pg);
    }
  } else {
    // Every token keeps the gradient of log p; only its (detached) weight is clipped.
    Tensor weight = ratio.clamp(1.0 - c.clip_low, 1.0 + c.clip_high).detach();
    pg = -weight * adv * logp;
    low = ratio < 1.0 - c.clip_low;
    high = ratio > 1.0 + c.clip_high;
  }

  Tensor per_token = pg;
  Tensor kl, entropy;
  if (c.beta > 0) {
    kl = ops::kl_penalty(logp, clean(in.ref_logp.detach()), valid, c.kl_estimator);
    per_token = per_token + c.beta * kl;
  }
  if (in.entropy.defined()) entropy = clean(in.entropy);
  if (c.entropy_coef != 0) per_token = per_token - c.entropy_coef * entropy;

  auto aggregate = [&](const Tensor& x) {  // x [N, T] -> the scalar the count normalises
    Tensor v = torch::where(valid, x, zero);
    if (c.aggregation == LossAggregation::seq_mean_token_mean) return (v.sum(1) / tokens.clamp_min(1)).sum();
    return v.sum();
  };
  auto token_sum = [&](const Tensor& x) { return torch::where(valid, x.to(dtype), zero).sum(); };

  PolicyLossResult out;
  out.loss_sum = aggregate(per_token);
  const Tensor count = count_tensor(c, valid);
  const Tensor n_tokens = valid.sum();

  MetricTensors m;
  m.add("loss/policy", aggregate(pg), count);
  if (c.beta > 0) m.add("loss/kl", aggregate(c.beta * kl), count);
  if (c.entropy_coef != 0) m.add("loss/entropy", aggregate(-c.entropy_coef * entropy), count);
  if (c.beta > 0) m.add("kl", token_sum(kl), n_tokens);
  if (entropy.defined()) m.add("entropy", token_sum(entropy), n_tokens);
  m.add("clip_ratio/low", token_sum(low), n_tokens);
  m.add("clip_ratio/high", token_sum(high), n_tokens);
  if (dual.defined()) m.add("clip_ratio/dual", token_sum(dual), n_tokens);
  m.add("ratio/mean", token_sum(ratio), n_tokens);
  m.add("approx_kl", token_sum(torch::expm1(token_log_ratio) - token_log_ratio), n_tokens);

  const double inf = std::numeric_limits<double>::infinity();
  // [N*T + 1]: the appended inf / -inf keep min / max defined for an empty micro-batch.
  Tensor r = ratio.detach().to(torch::kFloat64).flatten();
  Tensor ok = valid.flatten();
  auto extreme = [&](double fill) {
    Tensor v = torch::where(ok, r, torch::full({}, fill, r.options()));
    return torch::cat({v, torch::full({1}, fill, r.options())});
  };
  std::vector<Tensor> scalars = m.sums;
  scalars.insert(scalars.end(), m.counts.begin(), m.counts.end());
  scalars.push_back(count);
  scalars.push_back(extreme(inf).min().reshape({}));
  scalars.push_back(extreme(-inf).max().reshape({}));
  const Tensor host = torch::stack(scalars).cpu();  // the one device sync
  const double* h = host.data_ptr<double>();
  const size_t k = m.names.size();
  for (size_t i = 0; i < k; ++i) out.metrics[m.names[i]] = {h[i], h[k + i]};
  out.count = h[2 * k];
  const bool any = out.metrics["ratio/mean"].count > 0;
  out.ratio_min = any ? h[2 * k + 1] : 1.0;
  out.ratio_max = any ? h[2 * k + 2] : 1.0;
  return out;
}

}  // namespace tune::algo

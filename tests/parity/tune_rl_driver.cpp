// Runs tune's RL loss core on tensors given as JSON (stdin) and prints the results as JSON, so
// tests/parity/test_grpo_loss.py can compare them with TRL's GRPOTrainer on the same numbers. Not a gtest.
//   {"cases": [case, ...]} -> {"results": [result, ...]}
//   case: {"config": {objective, ratio_level, aggregation, clip_low, clip_high, dual_clip, log_ratio_clamp,
//                     beta, kl, entropy_coef, max_completion_length},
//          "logp", "old_logp", "ref_logp", "mask", "entropy": [N][T] (old, ref, entropy optional),
//          "advantages": [N] | [N][T]  or  "rewards": {values, valid, group_size, baseline, scale, eps},
//          "micro_batches": k (rows split into k contiguous chunks; default 1)}
//   result: {"loss", "count", "grad": d loss / d logp [N][T], "entropy_grad", "advantages", "metrics": {k: mean},
//            "ratio_min", "ratio_max"}
// The step is run as the stepper runs it: every chunk's count first, then per chunk
// backward(loss_sum / summed count).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <iterator>
#include <map>

#include "tune/algo/policy_loss.h"
#include "tune/ops/advantages.h"
#include "tune/core/json.h"

using namespace tune;
using torch::Tensor;

namespace {

Tensor tensor(const Json& j) {
  if (j.empty() || !j[0].is_array()) return torch::tensor(j.get<std::vector<double>>(), torch::kFloat64);
  std::vector<Tensor> rows;
  for (const auto& row : j) rows.push_back(torch::tensor(row.get<std::vector<double>>(), torch::kFloat64));
  return torch::stack(rows);
}

Tensor optional(const Json& c, const char* key) { return c.contains(key) && !c[key].is_null() ? tensor(c[key]) : Tensor(); }

Json list(const Tensor& t) {
  Tensor c = t.detach().to(torch::kFloat64).contiguous();
  if (c.dim() == 1) return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  Json rows = Json::array();
  for (int64_t i = 0; i < c.size(0); ++i) rows.push_back(list(c[i]));
  return rows;
}

algo::PolicyLossConfig policy_config(const Json& j) {
  algo::PolicyLossConfig c;
  c.objective = algo::parse_policy_objective(j.value("objective", "clip"));
  c.ratio_level = algo::parse_ratio_level(j.value("ratio_level", "token"));
  c.aggregation = algo::parse_loss_aggregation(j.value("aggregation", "token_mean"));
  c.clip_low = j.value("clip_low", c.clip_low);
  c.clip_high = j.value("clip_high", c.clip_high);
  c.dual_clip = j.value("dual_clip", c.dual_clip);
  c.log_ratio_clamp = j.value("log_ratio_clamp", c.log_ratio_clamp);
  c.beta = j.value("beta", c.beta);
  c.kl_estimator = ops::parse_kl_kind(j.value("kl", "k3"));
  c.entropy_coef = j.value("entropy_coef", c.entropy_coef);
  c.max_completion_length = j.value("max_completion_length", int64_t{0});
  return c;
}

Tensor advantages(const Json& c) {
  if (c.contains("advantages")) return tensor(c["advantages"]);
  const Json& r = c["rewards"];
  ops::GroupAdvantageOptions o;
  o.group_size = r["group_size"].get<int64_t>();
  o.baseline = ops::parse_group_baseline(r.value("baseline", "mean"));
  o.scale = ops::parse_reward_scale(r.value("scale", "group"));
  o.eps = r.value("eps", o.eps);
  // JSON has no nan: an excluded sample's reward is null, and valid marks it.
  std::vector<double> values;
  for (const auto& v : r["values"]) values.push_back(v.is_null() ? std::nan("") : v.get<double>());
  Tensor valid = r.contains("valid") ? tensor(r["valid"]) : Tensor();
  return ops::group_advantages(torch::tensor(values, torch::kFloat64), o, valid);
}

Json run_case(const Json& c) {
  algo::PolicyLossConfig cfg = policy_config(c["config"]);
  Tensor logp = tensor(c["logp"]).requires_grad_(true);
  Tensor old = optional(c, "old_logp"), ref = optional(c, "ref_logp"), mask = tensor(c["mask"]);
  Tensor entropy = optional(c, "entropy");
  if (entropy.defined()) entropy.requires_grad_(true);
  Tensor adv = advantages(c);
  const int64_t n = logp.size(0), k = std::min<int64_t>(c.value("micro_batches", int64_t{1}), n);

  auto rows = [&](const Tensor& t, int64_t i) {  // chunk i of k, contiguous rows
    if (!t.defined()) return t;
    const int64_t lo = n * i / k, hi = n * (i + 1) / k;
    return t.narrow(0, lo, hi - lo);
  };
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += algo::policy_loss_count(cfg, rows(mask, i));
  double loss = 0, ratio_min = 1e300, ratio_max = -1e300;
  std::map<std::string, train::MetricSum> metrics;
  for (int64_t i = 0; i < k; ++i) {
    algo::PolicyLossInputs in{rows(logp, i), rows(old, i), rows(ref, i), rows(adv, i), rows(mask, i), rows(entropy, i)};
    algo::PolicyLossResult r = algo::policy_loss(cfg, in);
    (r.loss_sum / total).backward();
    loss += r.loss_sum.item<double>() / total;
    for (const auto& [name, m] : r.metrics) {
      metrics[name].sum += m.sum;
      metrics[name].count += m.count;
    }
    ratio_min = std::min(ratio_min, r.ratio_min);
    ratio_max = std::max(ratio_max, r.ratio_max);
  }
  Json out{{"loss", loss}, {"count", total}, {"grad", list(logp.grad())}, {"advantages", list(adv)},
           {"ratio_min", ratio_min}, {"ratio_max", ratio_max}};
  if (entropy.defined() && entropy.grad().defined()) out["entropy_grad"] = list(entropy.grad());
  Json m = Json::object();
  for (const auto& [name, s] : metrics) m[name] = s.count > 0 ? s.sum / s.count : 0.0;
  out["metrics"] = m;
  return out;
}

}  // namespace

int main() {
  try {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    Json in = Json::parse(text);
    Json results = Json::array();
    for (const auto& c : in["cases"]) results.push_back(run_case(c));
    std::cout << Json{{"results", results}}.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tune_rl_driver: " << e.what() << "\n";
    return 1;
  }
}

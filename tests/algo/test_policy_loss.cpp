// The policy loss against a scalar reference written from the formulas (loops over tokens, analytic
// gradients), for the modes TRL lacks or computes differently, and the micro-batch invariance of
// every aggregation. TRL's modes are checked against TRL itself in tests/parity/test_grpo_loss.py.
// Sources of the formulas (see /work/shared/reference/rl-algorithms.md):
//   clip, decoupled clip: PPO (Schulman 2017), DAPO (Yu et al. 2025) clip-higher
//   dual clip: Ye et al. 2020; verl core_algos.py compute_policy_loss (clip_ratio_c), OpenRLHF models/loss.py
//   GSPO token form: Zheng et al. 2025 (s_it = sg(s_i) p / sg(p)); verl core_algos.py compute_policy_loss_gspo
//   CISPO: MiniMax-M1 (2025), -sg(clip(rho)) A log p
//   k1 / k2 / k3: Schulman, "Approximating KL divergence"; verl core_algos.py kl_penalty
//   aggregation: verl core_algos.py agg_loss (token-mean, seq-mean-token-mean, seq-mean-token-sum-norm)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "tune/algo/policy_loss.h"
#include "tune/core/error.h"
#include "tune/train/stepper.h"

namespace {

using tune::algo::LossAggregation;
using tune::algo::PolicyLossConfig;
using tune::algo::PolicyLossInputs;
using tune::algo::PolicyObjective;
using tune::algo::RatioLevel;
using tune::ops::KlKind;
using torch::Tensor;

struct Batch {
  Tensor logp, old, ref, adv, mask, entropy;  // float64; adv [N, T]
};

Batch random_batch(int64_t n, int64_t t, uint64_t seed, double noise = 0.4) {
  torch::manual_seed(seed);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Batch b;
  Tensor lengths = torch::randint(1, t + 1, {n});
  b.mask = (torch::arange(t).unsqueeze(0) < lengths.unsqueeze(1)).to(torch::kFloat64);
  b.logp = -torch::rand({n, t}, opts) * 3;
  b.old = b.logp + noise * torch::randn({n, t}, opts);
  b.ref = b.logp + 0.3 * torch::randn({n, t}, opts);
  b.adv = torch::randn({n, 1}, opts).expand({n, t}).contiguous();
  b.entropy = torch::rand({n, t}, opts) * 2;
  return b;
}

struct Reference {
  double loss = 0;           // loss_sum / count
  std::vector<double> grad;  // d loss / d logp, row-major [N, T]
};

double clip(double x, double lo, double hi) { return std::min(std::max(x, lo), hi); }

// Per token: the loss l and dl/dlogp from the formulas; then the aggregation's weights.
Reference reference(const PolicyLossConfig& c, const Batch& b) {
  auto lp = b.logp.accessor<double, 2>(), old = b.old.accessor<double, 2>(), ref = b.ref.accessor<double, 2>();
  auto adv = b.adv.accessor<double, 2>(), mask = b.mask.accessor<double, 2>(), ent = b.entropy.accessor<double, 2>();
  const int64_t n = b.logp.size(0), t = b.logp.size(1);
  Reference r;
  r.grad.assign(n * t, 0.0);
  double count = 0;
  for (int64_t i = 0; i < n; ++i) {
    double len = 0, seq_log_ratio = 0;
    for (int64_t j = 0; j < t; ++j)
      if (mask[i][j]) len += 1, seq_log_ratio += lp[i][j] - old[i][j];
    if (len == 0) continue;
    seq_log_ratio /= len;
    count += c.aggregation == LossAggregation::token_mean ? len
             : c.aggregation == LossAggregation::seq_mean_token_mean ? 1.0
                                                                      : static_cast<double>(c.max_completion_length);
    const double w = c.aggregation == LossAggregation::seq_mean_token_mean ? 1.0 / len : 1.0;
    for (int64_t j = 0; j < t; ++j) {
      if (!mask[i][j]) continue;
      const double a = adv[i][j];
      double log_ratio = c.ratio_level == RatioLevel::token ? lp[i][j] - old[i][j] : seq_log_ratio;
      bool clamped = c.log_ratio_clamp > 0 && std::abs(log_ratio) > c.log_ratio_clamp;
      log_ratio = clip(log_ratio, -c.log_ratio_clamp, c.log_ratio_clamp);
      const double rho = std::exp(log_ratio);
      const double drho = clamped ? 0.0 : rho;  // d rho / d logp_t (GSPO token form: s_i as well)
      const double lo = 1 - c.clip_low, hi = 1 + c.clip_high;
      double l, dl;
      if (c.objective == PolicyObjective::clip) {
        const double unclipped = -a * rho, clipped = -a * clip(rho, lo, hi);
        const bool inside = rho >= lo && rho <= hi;
        l = std::max(unclipped, clipped);
        dl = (unclipped >= clipped || inside) ? -a * drho : 0.0;
        if (c.dual_clip > 0 && a < 0 && l > -c.dual_clip * a) l = -c.dual_clip * a, dl = 0.0;
      } else {
        const double weight = clip(rho, lo, hi);
        l = -weight * a * lp[i][j];
        dl = -weight * a;
      }
      if (c.beta > 0) {
        const double d = ref[i][j] - lp[i][j];  // log(pi_ref / pi)
        switch (c.kl_estimator) {
          case KlKind::k1: l += c.beta * -d; dl += c.beta; break;
          case KlKind::k2: l += c.beta * 0.5 * d * d; dl += c.beta * -d; break;
          case KlKind::k3: l += c.beta * (std::exp(d) - d - 1); dl += c.beta * (1 - std::exp(d)); break;
        }
      }
      l -= c.entropy_coef * ent[i][j];
      r.loss += w * l;
      r.grad[i * t + j] = w * dl;
    }
  }
  r.loss /= count;
  for (auto& g : r.grad) g /= count;
  return r;
}

// The step as the stepper runs it: counts first, then backward(loss_sum / total) per chunk of rows.
Reference run_split(const PolicyLossConfig& c, const Batch& b, int64_t k) {
  Tensor logp = b.logp.clone().requires_grad_(true);
  const int64_t n = b.logp.size(0);
  auto rows = [&](const Tensor& x, int64_t i) { return x.narrow(0, n * i / k, n * (i + 1) / k - n * i / k); };
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += tune::algo::policy_loss_count(c, rows(b.mask, i));
  Reference out;
  for (int64_t i = 0; i < k; ++i) {
    PolicyLossInputs in{rows(logp, i), rows(b.old, i), rows(b.ref, i), rows(b.adv, i), rows(b.mask, i),
                        rows(b.entropy, i)};
    auto r = tune::algo::policy_loss(c, in);
    EXPECT_DOUBLE_EQ(r.count, tune::algo::policy_loss_count(c, rows(b.mask, i)));
    (r.loss_sum / total).backward();
    out.loss += r.loss_sum.item<double>() / total;
  }
  Tensor g = logp.grad().contiguous();
  out.grad.assign(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  return out;
}

void expect_same(const Reference& got, const Reference& want, const std::string& what, double tol = 1e-10) {
  EXPECT_NEAR(got.loss, want.loss, tol) << what;
  ASSERT_EQ(got.grad.size(), want.grad.size());
  double worst = 0;
  for (size_t i = 0; i < got.grad.size(); ++i) worst = std::max(worst, std::abs(got.grad[i] - want.grad[i]));
  EXPECT_LE(worst, tol) << what << ": gradient differs by " << worst;
}

PolicyLossConfig config(LossAggregation agg) {
  PolicyLossConfig c;
  c.aggregation = agg;
  c.max_completion_length = 9;
  c.clip_high = 0.28;
  return c;
}

const LossAggregation kAggregations[] = {LossAggregation::token_mean, LossAggregation::seq_mean_token_mean,
                                         LossAggregation::seq_mean_token_sum_norm};

TEST(PolicyLoss, MatchesFormulaReferenceAcrossModes) {
  Batch b = random_batch(6, 7, 1);
  for (LossAggregation agg : kAggregations) {
    for (KlKind kl : {KlKind::k1, KlKind::k2, KlKind::k3}) {
      PolicyLossConfig c = config(agg);
      c.beta = 0.05;
      c.kl_estimator = kl;
      c.entropy_coef = 0.01;
      expect_same(run_split(c, b, 1), reference(c, b),
                  tune::str(tune::algo::loss_aggregation_name(agg), " ", tune::ops::kl_kind_name(kl)));
    }
  }
}

TEST(PolicyLoss, DualClipCispoAndGspoMatchReference) {
  Batch b = random_batch(6, 7, 2, /*noise=*/1.2);  // ratios well past 3 on both sides
  for (LossAggregation agg : kAggregations) {
    PolicyLossConfig dual = config(agg);
    dual.dual_clip = 3.0;
    expect_same(run_split(dual, b, 1), reference(dual, b), "dual clip");
    PolicyLossConfig cispo = config(agg);
    cispo.objective = PolicyObjective::cispo;
    cispo.clip_low = 1.0;   // no floor, as MiniMax-M1
    cispo.clip_high = 1.0;  // weight <= 2
    expect_same(run_split(cispo, b, 1), reference(cispo, b), "cispo");
    PolicyLossConfig gspo = config(agg);
    gspo.ratio_level = RatioLevel::sequence;
    gspo.clip_low = 3e-4, gspo.clip_high = 4e-4;  // GSPO's own
    expect_same(run_split(gspo, b, 1), reference(gspo, b), "gspo");
  }
  // The dual clip is active on this data: without it the loss is larger.
  PolicyLossConfig plain = config(LossAggregation::token_mean), dual = plain;
  dual.dual_clip = 3.0;
  EXPECT_GT(reference(plain, b).loss, reference(dual, b).loss + 1e-3);
}

TEST(PolicyLoss, LogRatioClampStopsTheGradient) {
  Batch b = random_batch(2, 3, 3);
  b.old = b.logp - 25.0;  // log ratio 25 everywhere: clamped to 20
  b.adv = -torch::ones_like(b.adv);
  PolicyLossConfig c = config(LossAggregation::token_mean);
  Reference got = run_split(c, b, 1);
  EXPECT_NEAR(got.loss, std::exp(20.0), std::exp(20.0) * 1e-12);  // -A * rho with rho = e^20, A = -1
  for (double g : got.grad) EXPECT_EQ(g, 0.0);
  expect_same(got, reference(c, b), "clamped", 1e-3);
}

// The acceptance test of the issue: each aggregation gives the same loss and gradient whether the
// step is one, two or four micro-batches (uneven ones: 10 rows into 4 is 2, 3, 2, 3).
TEST(PolicyLoss, EveryAggregationIsInvariantToMicroBatchSplits) {
  Batch b = random_batch(10, 8, 4);
  for (LossAggregation agg : kAggregations) {
    PolicyLossConfig c = config(agg);
    c.beta = 0.02;
    c.entropy_coef = 0.01;
    Reference one = run_split(c, b, 1);
    expect_same(one, reference(c, b), "one micro-batch");
    for (int64_t k : {2, 4}) expect_same(run_split(c, b, k), one, tune::str(tune::algo::loss_aggregation_name(agg), " k=", k));
  }
}

// The same through the real stepper: one SGD step (lr 1, no clipping) on the log-probs themselves
// gives the same parameters and the same reported metrics for 1, 2 and 4 micro-batches.
TEST(PolicyLoss, StepperStepIsInvariantToTheSplit) {
  Batch b = random_batch(10, 8, 9);
  for (LossAggregation agg : kAggregations) {
    PolicyLossConfig c = config(agg);
    c.beta = 0.02;
    std::vector<Tensor> after;
    std::vector<std::map<std::string, double>> reported;
    for (int64_t k : {1, 2, 4}) {
      Tensor theta = b.logp.clone().requires_grad_(true);
      torch::optim::SGD sgd(std::vector<Tensor>{theta}, torch::optim::SGDOptions(1.0));
      tune::train::Stepper stepper(
          sgd, tune::train::LrSchedule({tune::train::ScheduleKind::constant, 0, 0.0, 0.0}, 1.0, 10), {0.0, 5});
      auto rows = [&](const Tensor& x, int64_t i) { return x.narrow(0, 10 * i / k, 10 * (i + 1) / k - 10 * i / k); };
      std::vector<double> counts;
      for (int64_t i = 0; i < k; ++i) counts.push_back(tune::algo::policy_loss_count(c, rows(b.mask, i)));
      auto res = stepper.step(counts, [&](int i) {
        auto r = tune::algo::policy_loss(c, {rows(theta, i), rows(b.old, i), rows(b.ref, i), rows(b.adv, i),
                                             rows(b.mask, i), {}});
        return tune::train::StepLoss{r.loss_sum, r.metrics};
      });
      ASSERT_TRUE(res.applied) << res.skip_reason;
      EXPECT_NEAR(res.loss, reference(c, b).loss, 1e-10);
      after.push_back(theta.detach().clone());
      reported.push_back(res.metrics);
    }
    for (size_t s = 1; s < after.size(); ++s) {
      EXPECT_LE((after[s] - after[0]).abs().max().item<double>(), 1e-12) << tune::algo::loss_aggregation_name(agg);
      ASSERT_EQ(reported[s].size(), reported[0].size());
      for (const auto& [key, value] : reported[0]) EXPECT_NEAR(reported[s].at(key), value, 1e-12) << key;
    }
    EXPECT_GT((after[0] - b.logp).abs().max().item<double>(), 1e-3);  // the step did move the parameters
  }
}

// The classic bug the design avoids, so the test above can fail: averaging each micro-batch's own
// token mean weights the tokens of short micro-batches more.
TEST(PolicyLoss, AveragingMicroBatchMeansWouldNotBeInvariant) {
  Batch b = random_batch(10, 8, 4);
  PolicyLossConfig c = config(LossAggregation::token_mean);
  double averaged = 0;
  for (int64_t i = 0; i < 4; ++i) {
    const int64_t lo = 10 * i / 4, hi = 10 * (i + 1) / 4;
    auto rows = [&](const Tensor& x) { return x.narrow(0, lo, hi - lo); };
    auto r = tune::algo::policy_loss(c, {rows(b.logp), rows(b.old), {}, rows(b.adv), rows(b.mask), {}});
    averaged += r.loss_sum.item<double>() / r.count / 4;
  }
  EXPECT_GT(std::abs(averaged - reference(c, b).loss), 1e-3);
}

TEST(PolicyLoss, MetricsByHand) {
  // One row, four tokens (the last masked, holding nan): ratios e^0.5, e^-0.5, 1; per-token
  // advantages 1, -1, 1; default clip 0.2 / 0.2.
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  Tensor logp = torch::tensor({0.5, -0.5, 0.0, static_cast<double>(NAN)}, o).view({1, 4}).requires_grad_(true);
  Tensor old = torch::zeros({1, 4}, o);
  Tensor adv = torch::tensor({1.0, -1.0, 1.0, static_cast<double>(NAN)}, o).view({1, 4});
  Tensor mask = torch::tensor({1, 1, 1, 0}).view({1, 4});
  Tensor ref = torch::zeros({1, 4}, o);
  PolicyLossConfig c;
  c.beta = 0.1;
  c.kl_estimator = KlKind::k1;
  auto r = tune::algo::policy_loss(c, {logp, old, ref, adv, mask, {}});
  EXPECT_EQ(r.count, 3.0);
  // token 0: rho 1.6487 > 1.2, A > 0 -> high clip, l = -1.2; token 1: rho 0.6065 < 0.8, A < 0 ->
  // low clip, l = max(0.6065, 0.8) = 0.8; token 2: l = -1. Sum -1.4. KL k1 = logp - ref: 0.5 - 0.5 + 0 = 0.
  EXPECT_NEAR(r.metrics.at("loss/policy").sum, -1.4, 1e-12);
  EXPECT_NEAR(r.metrics.at("loss/kl").sum, 0.0, 1e-12);
  EXPECT_NEAR(r.loss_sum.item<double>(), r.metrics.at("loss/policy").sum + r.metrics.at("loss/kl").sum, 1e-12);
  EXPECT_EQ(r.metrics.at("clip_ratio/high").sum, 1.0);
  EXPECT_EQ(r.metrics.at("clip_ratio/low").sum, 1.0);
  EXPECT_EQ(r.metrics.at("clip_ratio/low").count, 3.0);
  EXPECT_NEAR(r.metrics.at("ratio/mean").sum, std::exp(0.5) + std::exp(-0.5) + 1.0, 1e-12);
  EXPECT_NEAR(r.ratio_min, std::exp(-0.5), 1e-12);
  EXPECT_NEAR(r.ratio_max, std::exp(0.5), 1e-12);
  // approx KL(old || new) = rho - 1 - log rho per token
  EXPECT_NEAR(r.metrics.at("approx_kl").sum, (std::exp(0.5) - 1.5) + (std::exp(-0.5) - 0.5), 1e-12);
  EXPECT_FALSE(r.metrics.count("entropy"));
  r.loss_sum.backward();
  Tensor g = logp.grad();
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>());  // the masked nan never reaches the gradient
  // clipped tokens have only the KL gradient beta * 1; token 2: -A * rho + beta = -0.9
  EXPECT_NEAR(g[0][0].item<double>(), 0.1, 1e-12);
  EXPECT_NEAR(g[0][1].item<double>(), 0.1, 1e-12);
  EXPECT_NEAR(g[0][2].item<double>(), -0.9, 1e-12);
  EXPECT_EQ(g[0][3].item<double>(), 0.0);
}

TEST(PolicyLoss, OnPolicyWithoutOldLogpHasRatioOne) {
  Batch b = random_batch(4, 5, 5);
  PolicyLossConfig c = config(LossAggregation::seq_mean_token_mean);
  auto r = tune::algo::policy_loss(c, {b.logp, {}, {}, b.adv.select(1, 0).contiguous(), b.mask, {}});
  EXPECT_NEAR(r.ratio_min, 1.0, 1e-15);
  EXPECT_NEAR(r.ratio_max, 1.0, 1e-15);
  EXPECT_EQ(r.metrics.at("clip_ratio/low").sum + r.metrics.at("clip_ratio/high").sum, 0.0);
  // With rho = 1 the per-sequence mean of -A is -A: the loss is -sum(A) over the rows.
  EXPECT_NEAR(r.loss_sum.item<double>(), -b.adv.select(1, 0).sum().item<double>(), 1e-12);
}

TEST(PolicyLoss, FullyMaskedRowsDoNotCount) {
  Batch b = random_batch(4, 5, 6);
  b.mask[1].zero_();
  PolicyLossConfig seq = config(LossAggregation::seq_mean_token_mean);
  EXPECT_EQ(tune::algo::policy_loss_count(seq, b.mask), 3.0);
  PolicyLossConfig dr = config(LossAggregation::seq_mean_token_sum_norm);
  EXPECT_EQ(tune::algo::policy_loss_count(dr, b.mask), 27.0);
  expect_same(run_split(seq, b, 1), reference(seq, b), "masked row");
  PolicyLossConfig tok = config(LossAggregation::token_mean);
  EXPECT_EQ(tune::algo::policy_loss_count(tok, b.mask), b.mask.sum().item<double>());
  // A micro-batch with no tokens at all: count 0, loss 0, finite.
  auto r = tune::algo::policy_loss(tok, {b.logp, b.old, {}, b.adv, torch::zeros_like(b.mask), {}});
  EXPECT_EQ(r.count, 0.0);
  EXPECT_EQ(r.loss_sum.item<double>(), 0.0);
  EXPECT_EQ(r.ratio_min, 1.0);
  // No rows at all (a rank or micro-batch without data): count 0, loss 0, no nan.
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  for (LossAggregation agg : kAggregations) {
    auto e = tune::algo::policy_loss(config(agg), {torch::zeros({0, 5}, o), {}, {}, torch::zeros({0}, o),
                                                   torch::zeros({0, 5}), {}});
    EXPECT_EQ(e.count, 0.0);
    EXPECT_EQ(e.loss_sum.item<double>(), 0.0);
  }
}

TEST(PolicyLoss, FloatInputsAndParsing) {
  Batch b = random_batch(3, 4, 7);
  PolicyLossConfig c = config(LossAggregation::token_mean);
  Tensor lp32 = b.logp.to(torch::kFloat32).requires_grad_(true);
  auto r = tune::algo::policy_loss(c, {lp32, b.old.to(torch::kFloat32), {}, b.adv.to(torch::kFloat32), b.mask, {}});
  EXPECT_EQ(r.loss_sum.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(r.loss_sum.item<double>() / r.count, reference(c, b).loss, 1e-5);
  using tune::algo::parse_loss_aggregation;
  EXPECT_EQ(parse_loss_aggregation("dapo"), LossAggregation::token_mean);
  EXPECT_EQ(parse_loss_aggregation("grpo"), LossAggregation::seq_mean_token_mean);
  EXPECT_EQ(parse_loss_aggregation("seq-mean-token-sum-norm"), LossAggregation::seq_mean_token_sum_norm);
  EXPECT_EQ(tune::algo::parse_ratio_level("gspo"), RatioLevel::sequence);
  EXPECT_THROW(parse_loss_aggregation("mean"), tune::UsageError);
  EXPECT_THROW(tune::algo::parse_policy_objective("sapo"), tune::UsageError);
}

TEST(PolicyLoss, RejectsBadConfigAndInputs) {
  Batch b = random_batch(3, 4, 8);
  PolicyLossInputs in{b.logp, b.old, {}, b.adv, b.mask, {}};
  PolicyLossConfig c;
  c.dual_clip = 0.5;
  EXPECT_THROW(tune::algo::policy_loss(c, in), tune::UsageError);
  c = {};
  c.aggregation = LossAggregation::seq_mean_token_sum_norm;  // no max_completion_length
  EXPECT_THROW(tune::algo::policy_loss_count(c, b.mask), tune::UsageError);
  c = {};
  c.beta = 0.1;  // no ref_logp
  EXPECT_THROW(tune::algo::policy_loss(c, in), tune::Error);
  c = {};
  c.entropy_coef = 0.1;  // no entropy
  EXPECT_THROW(tune::algo::policy_loss(c, in), tune::Error);
  c = {};
  in.advantages = torch::zeros({2});
  EXPECT_THROW(tune::algo::policy_loss(c, in), tune::Error);
}

}  // namespace

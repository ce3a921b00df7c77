// KL estimators, masked reductions, GAE and group advantages against hand-worked values.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "support/tensor_checks.h"
#include "tune/core/error.h"
#include "tune/ops/advantages.h"
#include "tune/ops/kl.h"
#include "tune/ops/masked.h"

namespace {

using torch::Tensor;

Tensor t2(std::vector<float> v, int64_t rows) { return torch::tensor(v).view({rows, -1}); }

TEST(KlPenalty, EstimatorsByHand) {
  // d = ref - logp = [-0.5, 1.0, (masked)]
  Tensor logp = t2({-1.0f, -2.0f, NAN}, 1), ref = t2({-1.5f, -1.0f, -0.5f}, 1);
  Tensor mask = torch::tensor({1, 1, 0}).view({1, 3});
  using tune::ops::KlKind;
  tune::test::expect_values(tune::ops::kl_penalty(logp, ref, mask, KlKind::k1), {0.5, -1.0, 0.0});
  tune::test::expect_values(tune::ops::kl_penalty(logp, ref, mask, KlKind::k2), {0.125, 0.5, 0.0});
  // k3: exp(-0.5) - 1 + 0.5 = 0.10653066; exp(1) - 1 - 1 = 0.71828183
  tune::test::expect_values(tune::ops::kl_penalty(logp, ref, mask, KlKind::k3), {0.10653066, 0.71828183, 0.0});
}

TEST(KlPenalty, K3GradientAndNames) {
  // d k3 / d logp = 1 - exp(ref - logp): at d = 1 -> 1 - e
  Tensor logp = torch::tensor({-2.0f}).view({1, 1}).requires_grad_(true);
  Tensor ref = torch::tensor({-1.0f}).view({1, 1});
  tune::ops::kl_penalty(logp, ref, torch::ones({1, 1}), tune::ops::KlKind::k3).sum().backward();
  EXPECT_NEAR(logp.grad().item<float>(), 1.0 - std::exp(1.0), 1e-6);
  EXPECT_EQ(tune::ops::parse_kl_kind("low_var_kl"), tune::ops::KlKind::k3);
  EXPECT_EQ(tune::ops::kl_kind_name(tune::ops::parse_kl_kind("k2")), "k2");
  EXPECT_THROW(tune::ops::parse_kl_kind("k4"), tune::UsageError);
  EXPECT_THROW(tune::ops::kl_penalty(torch::zeros({1, 2}), torch::zeros({1, 3}), torch::ones({1, 2}),
                                     tune::ops::KlKind::k1),
               tune::Error);
}

TEST(Masked, SumMeanVarWhitenByHand) {
  Tensor x = t2({1, 2, 3, 4, NAN, 6}, 2);
  Tensor mask = torch::tensor({true, true, false, true, false, true}).view({2, 3});
  // valid values 1, 2, 4, 6: sum 13, mean 3.25, squared deviations 14.75, unbiased var 14.75 / 3
  EXPECT_FLOAT_EQ(tune::ops::masked_sum(x, mask).item<float>(), 13.0f);
  EXPECT_FLOAT_EQ(tune::ops::masked_mean(x, mask).item<float>(), 3.25f);
  tune::test::expect_values(tune::ops::masked_mean(x, mask, 1), {1.5, 5.0});
  tune::test::expect_values(tune::ops::masked_sum(x, mask.to(torch::kFloat32), 0), {5, 2, 6});
  EXPECT_NEAR(tune::ops::masked_var(x, mask).item<float>(), 14.75 / 3, 1e-6);
  double sd = std::sqrt(14.75 / 3 + 1e-8);
  tune::test::expect_values(tune::ops::masked_whiten(x, mask), {-2.25 / sd, -1.25 / sd, 0, 0.75 / sd, 0, 2.75 / sd});
  tune::test::expect_values(tune::ops::masked_whiten(x, mask, /*shift_mean=*/false),
                {-2.25 / sd + 3.25, -1.25 / sd + 3.25, 0, 0.75 / sd + 3.25, 0, 2.75 / sd + 3.25}, 1e-5);
}

TEST(Masked, EmptyMaskGivesZeroNotNan) {
  Tensor x = t2({1, 2, 3}, 1);
  Tensor none = torch::zeros({1, 3});
  EXPECT_EQ(tune::ops::masked_mean(x, none).item<float>(), 0.0f);
  EXPECT_EQ(tune::ops::masked_var(x, none).item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(tune::ops::masked_whiten(x, none), torch::zeros({1, 3})));
  EXPECT_TRUE(torch::equal(tune::ops::masked_whiten(x, torch::tensor({0, 1, 0}).view({1, 3})), torch::zeros({1, 3})));
  EXPECT_THROW(tune::ops::masked_mean(x, torch::ones({3})), tune::Error);
}

TEST(Gae, HandWorkedSequence) {
  // rewards [0, 0, 1], values [0.5, 0.6, 0.7], gamma 1, lambda 0.95:
  //   delta = [0.1, 0.1, 0.3]; A2 = 0.3, A1 = 0.1 + 0.95 * 0.3 = 0.385, A0 = 0.1 + 0.95 * 0.385 = 0.46575
  auto r = tune::ops::gae(t2({0, 0, 1}, 1), t2({0.5, 0.6, 0.7}, 1), torch::ones({1, 3}), 1.0, 0.95);
  tune::test::expect_values(r.advantages, {0.46575, 0.385, 0.3});
  tune::test::expect_values(r.returns, {0.96575, 0.985, 1.0});
  // gamma 0.9, lambda 0.8: delta = [0.04, 0.03, 0.3]; A1 = 0.03 + 0.72 * 0.3 = 0.246, A0 = 0.04 + 0.72 * 0.246
  auto d = tune::ops::gae(t2({0, 0, 1}, 1), t2({0.5, 0.6, 0.7}, 1), torch::ones({1, 3}), 0.9, 0.8);
  tune::test::expect_values(d.advantages, {0.21712, 0.246, 0.3});
}

TEST(Gae, MaskedPositionsAreSkipped) {
  // Row 0: a masked position in the middle holding junk; row 1: right padding. Both reduce to the
  // hand-worked sequence above on their valid positions.
  Tensor rewards = t2({0, 42, 0, 1, /**/ 0, 0, 1, 5}, 2);
  Tensor values = t2({0.5, 99, 0.6, 0.7, /**/ 0.5, 0.6, 0.7, 9}, 2);
  Tensor mask = torch::tensor({1, 0, 1, 1, 1, 1, 1, 0}).view({2, 4});
  auto r = tune::ops::gae(rewards, values, mask, 1.0, 0.95);
  tune::test::expect_values(r.advantages, {0.46575, 0, 0.385, 0.3, /**/ 0.46575, 0.385, 0.3, 0});
  tune::test::expect_values(r.returns, {0.96575, 0, 0.985, 1.0, /**/ 0.96575, 0.985, 1.0, 0});
}

TEST(GroupAdvantages, GrpoAndDrGrpo) {
  // groups of 3: [1, 2, 3] mean 2, unbiased std 1; [5, 5, 5] no spread -> 0
  Tensor rewards = torch::tensor({1.0f, 2.0f, 3.0f, 5.0f, 5.0f, 5.0f});
  double s = 1.0 + 1e-4;
  tune::test::expect_values(tune::ops::group_advantages(rewards, 3), {-1 / s, 0, 1 / s, 0, 0, 0});
  tune::test::expect_values(tune::ops::group_advantages(rewards, 3, /*scale_by_std=*/false), {-1, 0, 1, 0, 0, 0});
  // [0, 1]: mean 0.5, unbiased std sqrt(0.5) = 0.70710678
  tune::test::expect_values(tune::ops::group_advantages(torch::tensor({0.0f, 1.0f}), 2), {-0.5 / 0.70720678, 0.5 / 0.70720678});
  tune::test::expect_values(tune::ops::group_advantages(torch::tensor({3.0f, 4.0f}), 1), {0, 0});
  EXPECT_THROW(tune::ops::group_advantages(rewards, 4), tune::Error);
}

}  // namespace

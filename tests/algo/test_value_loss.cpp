// PPO's clipped value loss and explained variance against hand-worked values. Formula sources:
// TRL PPO (vf_loss = 0.5 * masked_mean(max(vf_losses1, vf_losses2))), OpenRLHF models/loss.py
// ValueLoss, verl core_algos.py compute_value_loss.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tune/algo/value_loss.h"
#include "tune/core/error.h"

namespace {

using torch::Tensor;

Tensor row(std::vector<double> v) { return torch::tensor(v, torch::kFloat64).view({1, -1}); }

TEST(ValueLoss, ClippedByHand) {
  // V_old (0, 0, 0, 0), returns (1, -1, 0.1, 9), clip 0.2, V (0.5, 0.1, 0.3, junk masked):
  //   token 0: (V - R)^2 = 0.25, V_clip = 0.2 -> 0.64: max 0.64 (clipped larger)
  //   token 1: 1.21, V_clip 0.1 -> 1.21: max 1.21
  //   token 2: 0.04, V_clip 0.2 -> 0.01: max 0.04
  Tensor v = row({0.5, 0.1, 0.3, NAN}).requires_grad_(true);
  Tensor mask = torch::tensor({1, 1, 1, 0}).view({1, 4});
  auto r = tune::algo::value_loss({0.2, 0.1}, v, torch::zeros({1, 4}, torch::kFloat64), row({1, -1, 0.1, 9}), mask);
  EXPECT_EQ(r.count, 3.0);
  EXPECT_NEAR(r.loss_sum.item<double>(), 0.1 * 0.5 * (0.64 + 1.21 + 0.04), 1e-12);
  EXPECT_NEAR(r.metrics.at("value/clip_frac").sum, 1.0, 1e-12);
  EXPECT_NEAR(r.metrics.at("value/error").sum, 0.25 + 1.21 + 0.04, 1e-12);
  EXPECT_NEAR(r.metrics.at("returns/mean").sum, 0.1, 1e-12);
  EXPECT_EQ(r.metrics.at("value/mean").count, 3.0);
  r.loss_sum.backward();
  // token 0: the clipped term is constant in V (V - V_old = 0.5 is past the clip): gradient 0;
  // token 1: 0.05 * 2 (V - R) = 0.11; token 2: 0.05 * 2 * 0.2 = 0.02; masked: 0
  Tensor g = v.grad();
  EXPECT_NEAR(g[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(g[0][1].item<double>(), 0.11, 1e-12);
  EXPECT_NEAR(g[0][2].item<double>(), 0.02, 1e-12);
  EXPECT_EQ(g[0][3].item<double>(), 0.0);
  // Clip off: 0.5 (V - R)^2 only.
  auto u = tune::algo::value_loss({0.0, 1.0}, v.detach(), torch::zeros({1, 4}, torch::kFloat64), row({1, -1, 0.1, 9}),
                                  mask);
  EXPECT_NEAR(u.loss_sum.item<double>(), 0.5 * (0.25 + 1.21 + 0.04), 1e-12);
  EXPECT_EQ(u.metrics.at("value/clip_frac").sum, 0.0);
}

TEST(ValueLoss, ExplainedVarianceByHand) {
  // R (1, 2, 3, 4): var 5/3. V = R: 1. V = mean: 0. V = R + (1, -1, 1, -1): var(R - V) = 4/3 -> 1 - 0.8 = 0.2
  Tensor ret = row({1, 2, 3, 4, 100});
  Tensor mask = torch::tensor({1, 1, 1, 1, 0}).view({1, 5});
  EXPECT_NEAR(tune::algo::explained_variance(ret, ret, mask), 1.0, 1e-12);
  EXPECT_NEAR(tune::algo::explained_variance(row({2.5, 2.5, 2.5, 2.5, 0}), ret, mask), 0.0, 1e-12);
  EXPECT_NEAR(tune::algo::explained_variance(row({2, 1, 4, 3, 0}), ret, mask), 0.2, 1e-12);
  EXPECT_EQ(tune::algo::explained_variance(ret, row({5, 5, 5, 5, 5}), mask), 0.0);  // returns do not vary
  EXPECT_THROW(tune::algo::explained_variance(ret, row({1}), mask), tune::Error);
}

}  // namespace

// Preference losses against values worked out by hand (log(1 + e^-x) for -log sigmoid(x)).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tune/algo/preference_losses.h"
#include "tune/core/error.h"

namespace {

using namespace tune::algo;

torch::Tensor t(std::vector<float> v) { return torch::tensor(v, torch::kFloat32); }
double softplus(double x) { return std::log1p(std::exp(x)); }  // -log sigmoid(-x)

// One pair: policy chosen -3 over 3 tokens, rejected -7 over 2; reference chosen -4, rejected -6.
// delta = (-3 + 4) - (-7 + 6) = 2.
SequenceLogps policy_lp() { return {t({-3}), t({-7}), t({3}), t({2})}; }
SequenceLogps reference_lp() { return {t({-4}), t({-6}), t({3}), t({2})}; }

double loss_of(PreferenceLossConfig c) {
  return preference_loss(c, policy_lp(), reference_lp()).losses.item<double>();
}

TEST(PreferenceLoss, SigmoidHandWorked) {
  // beta 0.5: -log sigmoid(1) = log(1 + e^-1) = 0.3132616875.
  EXPECT_NEAR(loss_of({PreferenceLossType::sigmoid, 0.5}), 0.31326168751822286, 1e-6);
  EXPECT_NEAR(sigmoid_loss(t({0}), 0.1, 0).item<double>(), std::log(2.0), 1e-7);
}

TEST(PreferenceLoss, LabelSmoothingIsConservativeDpo) {
  // 0.9 * log(1+e^-1) + 0.1 * log(1+e^1) = 0.41326168751.
  PreferenceLossConfig c{PreferenceLossType::sigmoid, 0.5, 0.1};
  EXPECT_NEAR(loss_of(c), 0.9 * softplus(-1) + 0.1 * softplus(1), 1e-6);
  EXPECT_NEAR(loss_of(c), 0.41326168751822286, 1e-6);
}

TEST(PreferenceLoss, RobustHandWorked) {
  // (0.9 * log(1+e^-1) - 0.1 * log(1+e^1)) / 0.8 = 0.18826168751.
  PreferenceLossConfig c{PreferenceLossType::robust, 0.5, 0.1};
  EXPECT_NEAR(loss_of(c), 0.18826168751822286, 1e-6);
  // Without smoothing it is DPO.
  EXPECT_NEAR(loss_of({PreferenceLossType::robust, 0.5, 0.0}), loss_of({PreferenceLossType::sigmoid, 0.5}), 1e-7);
  EXPECT_THROW(robust_loss(t({1}), 0.1, 0.5), tune::UsageError);
}

TEST(PreferenceLoss, HingeHandWorked) {
  EXPECT_NEAR(loss_of({PreferenceLossType::hinge, 0.5}), 0.0, 1e-7);  // 1 - 0.5 * 2 = 0
  EXPECT_NEAR(loss_of({PreferenceLossType::hinge, 0.25}), 0.5, 1e-7);  // 1 - 0.25 * 2
  EXPECT_NEAR(hinge_loss(t({-2}), 0.5).item<double>(), 2.0, 1e-7);
}

TEST(PreferenceLoss, IpoUsesLengthAveragedLogRatios) {
  // chosen ratio 1 over 3 tokens, rejected ratio -1 over 2: delta_avg = 1/3 + 1/2 = 5/6;
  // beta 0.5: (5/6 - 1)^2 = 1/36.
  EXPECT_NEAR(loss_of({PreferenceLossType::ipo, 0.5}), 1.0 / 36.0, 1e-6);
  // beta 0.1: (5/6 - 5)^2 = (25/6)^2.
  EXPECT_NEAR(loss_of({PreferenceLossType::ipo, 0.1}), 625.0 / 36.0, 1e-4);
}

TEST(PreferenceLoss, SimpoIsReferenceFreeAndLengthNormalised) {
  // avg chosen -1, avg rejected -3.5; beta 2, gamma 0.5: z = 2 * 2.5 - 0.5 = 4.5.
  PreferenceLossConfig c{PreferenceLossType::simpo, 2.0, 0.0, 0.5};
  SequenceLogps none;
  auto r = preference_loss(c, policy_lp(), none);
  EXPECT_NEAR(r.losses.item<double>(), softplus(-4.5), 1e-6);
  EXPECT_NEAR(r.chosen_rewards.item<double>(), -2.0, 1e-6);   // beta * avg
  EXPECT_NEAR(r.rejected_rewards.item<double>(), -7.0, 1e-6);
  EXPECT_FALSE(needs_reference(PreferenceLossType::simpo));
}

TEST(PreferenceLoss, NllTermAddsPerTokenChosenNll) {
  // -(-3) / 3 = 1 per token, times alpha 0.5.
  PreferenceLossConfig c{PreferenceLossType::sigmoid, 0.5};
  c.nll_alpha = 0.5;
  EXPECT_NEAR(loss_of(c), 0.31326168751822286 + 0.5, 1e-6);
}

TEST(PreferenceLoss, RewardsAndMetrics) {
  auto r = preference_loss({PreferenceLossType::sigmoid, 0.5}, policy_lp(), reference_lp());
  EXPECT_NEAR(r.chosen_rewards.item<double>(), 0.5, 1e-6);     // 0.5 * (-3 + 4)
  EXPECT_NEAR(r.rejected_rewards.item<double>(), -0.5, 1e-6);  // 0.5 * (-7 + 6)
  auto m = preference_metric_sums(r, policy_lp());
  EXPECT_NEAR(m.at("rewards/margins"), 1.0, 1e-6);
  EXPECT_EQ(m.at("rewards/accuracies"), 1.0);
  EXPECT_EQ(m.at("logps/chosen"), -3.0);
  EXPECT_EQ(m.at("logps/rejected"), -7.0);
}

TEST(PreferenceLoss, GradientPushesChosenUpRejectedDown) {
  auto c = torch::tensor({-3.0f}, torch::requires_grad());
  auto rj = torch::tensor({-7.0f}, torch::requires_grad());
  SequenceLogps p{c, rj, t({3}), t({2})};
  auto loss = preference_loss({PreferenceLossType::sigmoid, 0.5}, p, reference_lp()).losses.sum();
  loss.backward();
  // d/dc of -log sigmoid(beta delta) = -beta * sigmoid(-beta delta) = -0.5 * sigmoid(-1).
  EXPECT_NEAR(c.grad().item<double>(), -0.5 / (1 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(rj.grad().item<double>(), 0.5 / (1 + std::exp(1.0)), 1e-6);
}

TEST(PreferenceLoss, ParseNames) {
  for (const auto& n : preference_loss_names()) EXPECT_NO_THROW(parse_preference_loss(n));
  EXPECT_THROW(parse_preference_loss("kto"), tune::UsageError);
}

}  // namespace

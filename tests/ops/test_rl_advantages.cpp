// The group-advantage family with excluded samples, PPO's per-token rewards, discounted returns and
// REINFORCE++ against hand-worked values. Sources of the formulas:
//   RLOO: Ahmadian et al. 2024, A_i = R_i - mean_{j != i} R_j (verl core_algos.py compute_rloo_outcome_advantage)
//   batch std: TRL scale_rewards "batch" (group mean, std over the whole batch)
//   token rewards: InstructGPT / TRL PPO (-beta k1 per token, score at the last token, missing_eos_penalty),
//                  OpenRLHF models/utils.py compute_reward (reward_clip_range)
//   REINFORCE++: Hu 2025; OpenRLHF ppo_utils/experience_maker.py get_cumulative_returns + whitening
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "support/tensor_checks.h"
#include "tune/core/error.h"
#include "tune/ops/advantages.h"
#include "tune/ops/returns.h"

namespace {

using torch::Tensor;
using namespace tune::ops;

Tensor f64(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

TEST(GroupAdvantageOptions, KernelFormEqualsTheOldCall) {
  Tensor r = torch::randn({24});
  for (bool scale : {true, false}) {
    GroupAdvantageOptions o{6, GroupBaseline::mean, scale ? RewardScale::group : RewardScale::none, 1e-4};
    EXPECT_TRUE(torch::allclose(group_advantages(r, o), group_advantages(r, 6, scale)));
    // An all-true mask takes the masked path and must agree with the unmasked one.
    EXPECT_TRUE(torch::allclose(group_advantages(r, o, torch::ones({24})), group_advantages(r, 6, scale), 1e-6, 1e-6));
  }
  EXPECT_EQ(group_advantages(f64({1, 2}), GroupAdvantageOptions{2}).scalar_type(), torch::kFloat64);
}

TEST(GroupAdvantageOptions, LeaveOneOutByHand) {
  // [1, 2, 3, 6]: baselines (11/3, 10/3, 3, 2) -> (-8/3, -4/3, 0, 4); [5, 5]: 0
  GroupAdvantageOptions o{4, GroupBaseline::leave_one_out, RewardScale::none};
  tune::test::expect_values(group_advantages(f64({1, 2, 3, 6}), o), {-8.0 / 3, -4.0 / 3, 0, 4});
  // = n / (n - 1) x (r - mean): mean 3 -> 4/3 x (-2, -1, 0, 3)
  // Excluded member (nan): [1, x, 3, 6] -> baselines 4.5, -, 3.5, 2
  Tensor valid = torch::tensor({1, 0, 1, 1});
  tune::test::expect_values(group_advantages(f64({1, NAN, 3, 6}), o, valid), {-3.5, 0, -0.5, 4});
  // A group left with one valid member has no baseline: 0.
  tune::test::expect_values(group_advantages(f64({7, NAN, NAN, NAN}), o, torch::tensor({1, 0, 0, 0})), {0, 0, 0, 0});
}

TEST(GroupAdvantageOptions, ExcludedSamplesLeaveTheStatistics) {
  // [1, x, 3, 5]: valid mean 3, unbiased std 2 -> (-2, 0, 0, 2) / (2 + eps)
  Tensor valid = torch::tensor({true, false, true, true});
  GroupAdvantageOptions o{4};
  const double s = 2 + 1e-4;
  tune::test::expect_values(group_advantages(f64({1, NAN, 3, 5}), o, valid), {-2 / s, 0, 0, 2 / s});
  o.scale = RewardScale::none;
  tune::test::expect_values(group_advantages(f64({1, 1e9, 3, 5}), o, valid), {-2, 0, 0, 2});
}

TEST(GroupAdvantageOptions, BatchStdKeepsTheGroupMean) {
  // groups [0, 2] and [10, 14]: group means 1 and 12; batch std of (0, 2, 10, 14): mean 6.5,
  // squared deviations 42.25 + 20.25 + 12.25 + 56.25 = 131, unbiased var 131 / 3
  GroupAdvantageOptions o{2, GroupBaseline::mean, RewardScale::batch};
  const double s = std::sqrt(131.0 / 3) + 1e-4;
  tune::test::expect_values(group_advantages(f64({0, 2, 10, 14}), o), {-1 / s, 1 / s, -2 / s, 2 / s});
  // With an excluded sample: valid (0, 2, 10) -> mean 4, squared deviations 16 + 4 + 36, var 28;
  // the group [10, x] has one valid member: 0.
  const double s2 = std::sqrt(28.0) + 1e-4;
  tune::test::expect_values(group_advantages(f64({0, 2, 10, NAN}), o, torch::tensor({1, 1, 1, 0})), {-1 / s2, 1 / s2, 0, 0});
}

TEST(GroupAdvantageOptions, ZeroVarianceGroupsAndNames) {
  Tensor r = f64({1, 1, 1, 1, /**/ 0, 1, 0, 0, /**/ 1, 0, 1, 1, /**/ 2, 3, 3, 3});
  Tensor valid = torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1});
  Tensor z = zero_variance_groups(r, 4, valid);
  EXPECT_TRUE(torch::equal(z, torch::tensor({true, false, true, true})));  // equal, spread, equal once the 0 is out, one valid
  EXPECT_TRUE(torch::equal(zero_variance_groups(r, 4), torch::tensor({true, false, false, false})));
  EXPECT_EQ(parse_group_baseline("rloo"), GroupBaseline::leave_one_out);
  EXPECT_EQ(reward_scale_name(parse_reward_scale("batch")), "batch");
  EXPECT_THROW(parse_reward_scale("std"), tune::UsageError);
  EXPECT_THROW(group_advantages(r, GroupAdvantageOptions{4}, torch::ones({3})), tune::Error);
}

TEST(TokenRewards, KlAtEveryTokenScoreAtTheLast) {
  // Row 0: 3 valid tokens; row 1: 2 valid tokens, no EOS; row 2: nothing valid.
  Tensor logp = torch::tensor({-1.0, -2.0, -0.5, -9.0, /**/ -1.0, -1.0, -3.0, -3.0, /**/ -1.0, -1.0, -1.0, -1.0},
                              torch::kFloat64).view({3, 4});
  Tensor ref = torch::tensor({-1.5, -1.0, -0.5, 0.0, /**/ -2.0, -0.5, 0.0, 0.0, /**/ 0.0, 0.0, 0.0, 0.0},
                             torch::kFloat64).view({3, 4});
  Tensor mask = torch::tensor({1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0}).view({3, 4});
  Tensor score = f64({2.0, 30.0, 5.0});
  Tensor eos = torch::tensor({true, false, true});
  TokenRewardOptions o{0.1, KlKind::k1, /*missing_eos_penalty=*/1.0, /*score_clip=*/10.0};
  // k1 = logp - ref: row 0 (0.5, -1, 0) -> -0.05, 0.1, 0 (+2 at t=2);
  // row 1 (1, -0.5) -> -0.1, 0.05; score 30 - 1 = 29 clipped to 10 at t=1.
  tune::test::expect_values(token_rewards(score, logp, ref, mask, eos, o),
                {-0.05, 0.1, 2.0, 0, /**/ -0.1, 10.05, 0, 0, /**/ 0, 0, 0, 0}, 1e-12);
  // Defaults: no penalty, no clip, every completion ended.
  tune::test::expect_values(token_rewards(score, logp, ref, mask, {}, {0.1}), {-0.05, 0.1, 2.0, 0, -0.1, 30.05, 0, 0, 0, 0, 0, 0},
                1e-12);
  EXPECT_THROW(token_rewards(f64({1}), logp, ref, mask, {}), tune::Error);
}

TEST(Returns, DiscountedOverValidPositions) {
  // rewards (1, x, 2, 3) with the second position masked, gamma 0.9:
  //   G3 = 3, G2 = 2 + 0.9 * 3 = 4.7, G0 = 1 + 0.9 * 4.7 = 5.23
  Tensor r = torch::tensor({1.0, 100.0, 2.0, 3.0}, torch::kFloat64).view({1, 4});
  Tensor mask = torch::tensor({1, 0, 1, 1}).view({1, 4});
  tune::test::expect_values(discounted_returns(r, mask, 0.9), {5.23, 0, 4.7, 3}, 1e-12);
}

TEST(Returns, ReinforcePlusPlusWhitensTheReturns) {
  // Two rows, gamma 1: returns (3, 2) and (1, 1, 1) -> values 3, 2, 1, 1, 1: mean 1.6,
  // squared deviations 1.96 + 0.16 + 3 * 0.36 = 3.2, unbiased var 0.8.
  Tensor r = torch::tensor({1.0, 2.0, 0.0, /**/ 0.0, 0.0, 1.0}, torch::kFloat64).view({2, 3});
  Tensor mask = torch::tensor({1, 1, 0, 1, 1, 1}).view({2, 3});
  const double sd = std::sqrt(0.8 + 1e-8);
  tune::test::expect_values(reinforce_pp_advantages(r, mask),
                {1.4 / sd, 0.4 / sd, 0, -0.6 / sd, -0.6 / sd, -0.6 / sd}, 1e-12);
  // The baseline form: group-centred scores, then the same call (OpenRLHF "reinforce_baseline").
  Tensor score = f64({1.0, 0.0});
  Tensor centred = group_advantages(score, {2, GroupBaseline::mean, RewardScale::none});
  tune::test::expect_values(centred, {0.5, -0.5}, 1e-12);
}

}  // namespace

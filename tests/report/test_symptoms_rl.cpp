// The RL rules of the symptom table on synthetic metric streams: each rule fires on the stream that shows its
// pathology, and stays quiet on a healthy run.
#include <gtest/gtest.h>

#include <cmath>

#include "tune/report/symptoms.h"

namespace {

using tune::report::SymptomWatcher;

std::vector<std::string> run(const std::function<std::map<std::string, double>(int)>& at, int steps = 60) {
  SymptomWatcher d("grpo");
  for (int s = 1; s <= steps; ++s) d.observe(s, at(s));
  std::vector<std::string> ids;
  for (const auto& s : d.reported()) ids.push_back(s.id);
  return ids;
}

TEST(RlSymptoms, AHealthyRunRaisesNothing) {
  auto ids = run([](int s) {
    return std::map<std::string, double>{{"reward", 0.2 + 0.01 * s}, {"kl", 0.01 + 0.001 * s},
                                         {"entropy", 1.0 - 0.005 * s}, {"completion_length", 20 + 0.1 * s}};
  });
  EXPECT_TRUE(ids.empty()) << ids.front();
}

TEST(RlSymptoms, RewardUpWhileKlExplodes) {
  auto ids = run([](int s) {
    return std::map<std::string, double>{{"reward", 0.1 * s}, {"kl", 0.02 * s}, {"completion_length", 20}};
  });
  EXPECT_EQ(ids, std::vector<std::string>{"kl_explosion"});
}

TEST(RlSymptoms, KlNearZeroAndRewardFlat) {
  auto ids = run([](int) { return std::map<std::string, double>{{"reward", 0.3}, {"kl", 1e-6}}; });
  EXPECT_EQ(ids, std::vector<std::string>{"kl_flat_reward"});
}

// PPO's critic warm-up: the frozen policy's KL is 0 and its reward flat by construction; those steps
// are passed over, and the rules judge the policy from its first update on.
TEST(RlSymptoms, TheCriticWarmUpIsPassedOver) {
  const int warmup = 40;
  auto moving = [](int s) { return std::map<std::string, double>{{"reward", 0.01 * s}, {"kl", 0.01}}; };
  auto ids = run([&](int s) {
    if (s <= warmup) return std::map<std::string, double>{{"reward", 0.3}, {"kl", 0.0}, {"policy_frozen", 1}};
    auto m = moving(s);
    m["policy_frozen"] = 0;
    return m;
  }, warmup + 40);
  EXPECT_TRUE(ids.empty()) << ids.front();
  // The same frozen records without the flag read as a policy that is not moving.
  EXPECT_EQ(run([](int) { return std::map<std::string, double>{{"reward", 0.3}, {"kl", 0.0}}; }, warmup),
            std::vector<std::string>{"kl_flat_reward"});
}

TEST(RlSymptoms, LengthsExplodingOrCollapsing) {
  EXPECT_EQ(run([](int s) { return std::map<std::string, double>{{"completion_length", 10.0 + s}, {"reward", 0.01 * s}}; }),
            std::vector<std::string>{"length_drift"});
  EXPECT_EQ(run([](int s) { return std::map<std::string, double>{{"completion_length", 100.0 - 1.5 * s}, {"reward", 0.01 * s}}; }),
            std::vector<std::string>{"length_drift"});
}

TEST(RlSymptoms, EntropyCollapse) {
  auto ids = run([](int s) {
    return std::map<std::string, double>{{"entropy", 2.0 * std::exp(-0.08 * s)}, {"reward", 0.01 * s}};
  });
  EXPECT_EQ(ids, std::vector<std::string>{"entropy_collapse"});
}

TEST(RlSymptoms, RewardFlatFromTheStart) {
  auto ids = run([](int) { return std::map<std::string, double>{{"reward", 0.05}}; });
  EXPECT_EQ(ids, std::vector<std::string>{"reward_flat"});
}

TEST(RlSymptoms, ASlowStartIsNotAFlatReward) {
  // Flat for 30 steps, then rising: judged at 50 observations, the reward has moved.
  auto ids = run([](int s) { return std::map<std::string, double>{{"reward", 0.05 + (s > 30 ? 0.01 * (s - 30) : 0.0)}}; });
  EXPECT_TRUE(ids.empty()) << ids.front();
}

TEST(RlSymptoms, ValueLossOscillatingWithHighRewardVariance) {
  // PPO: the value loss jumps between 0.1 and 2 while the scores spread widely.
  auto ids = run([](int s) {
    return std::map<std::string, double>{{"reward", 0.01 * s}, {"reward_std", 3.0},
                                         {"value/loss", s % 2 ? 2.0 : 0.1}, {"completion_length", 20}};
  });
  EXPECT_EQ(ids, std::vector<std::string>{"value_oscillation"});
  // The same loss level, steady, with normalised scores: nothing.
  auto quiet = run([](int s) {
    return std::map<std::string, double>{{"reward", 0.01 * s}, {"reward_std", 1.0},
                                         {"value/loss", 1.0 + 0.05 * (s % 2)}, {"completion_length", 20}};
  });
  EXPECT_TRUE(quiet.empty()) << quiet.front();
}

TEST(RlSymptoms, RewardRisingWhileHeldOutQualityFallsIsHacking) {
  SymptomWatcher d("ppo");
  std::vector<std::string> ids;
  for (int s = 1; s <= 60; ++s) {
    d.observe(s, {{"reward", 0.02 * s}, {"completion_length", 20}});
    if (s % 10 == 0) {
      // Held-out quality peaks at step 20, then falls while the reward keeps rising.
      const double quality = s <= 20 ? 0.3 + 0.01 * s : 0.5 - 0.05 * (s - 20) / 10.0;
      for (const auto& x : d.observe_eval(s, {{"eval_pass@1", quality}})) ids.push_back(x.id);
    }
  }
  EXPECT_EQ(ids, std::vector<std::string>{"reward_hacking"});
  // Quality best at step 0 (before any reward) and falling while the reward stays flat: the policy got
  // worse, but not by earning more reward. The reward then is its first window, not 0.
  SymptomWatcher flat("ppo");
  EXPECT_TRUE(flat.observe_eval(0, {{"eval_pass@1", 0.9}}).empty());
  for (int s = 1; s <= 60; ++s) {
    flat.observe(s, {{"reward", 0.35 + 0.0001 * s}});
    if (s % 10 == 0) {
      for (const auto& x : flat.observe_eval(s, {{"eval_pass@1", 0.9 - 0.01 * s}}))
        EXPECT_NE(x.id, "reward_hacking") << x.message;
    }
  }
  // The same fall with the reward rising from its first window on: hacking.
  SymptomWatcher rising("ppo");
  std::vector<std::string> found;
  rising.observe_eval(0, {{"eval_pass@1", 0.9}});
  for (int s = 1; s <= 60; ++s) {
    rising.observe(s, {{"reward", 0.35 + 0.01 * s}});
    if (s % 10 == 0)
      for (const auto& x : rising.observe_eval(s, {{"eval_pass@1", 0.9 - 0.01 * s}})) found.push_back(x.id);
  }
  EXPECT_EQ(found, std::vector<std::string>{"reward_hacking"});
  // Quality rising with the reward: nothing.
  SymptomWatcher healthy("grpo");
  for (int s = 1; s <= 60; ++s) {
    healthy.observe(s, {{"reward", 0.02 * s}});
    if (s % 10 == 0) {
      EXPECT_TRUE(healthy.observe_eval(s, {{"eval_pass@1", 0.2 + 0.01 * s}}).empty());
    }
  }
}

}  // namespace

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

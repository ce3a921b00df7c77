// The RL symptom watcher on synthetic metric streams: each rule fires on the stream that shows its
// pathology, and stays quiet on a healthy run.
#include <gtest/gtest.h>

#include <cmath>

#include "tune/algo/rl_symptoms.h"

namespace {

using tune::algo::RlSymptomDetector;

std::vector<std::string> run(const std::function<std::map<std::string, double>(int)>& at, int steps = 60) {
  RlSymptomDetector d;
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

}  // namespace

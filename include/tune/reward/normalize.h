#pragma once
// Score normalisation for reward-model terms: (score - mean) / std, with the statistics fixed
// (from the config, or from the RM's own calibration in reward_stats.json) or running over every
// score seen so far. Practitioners normalise RM scores before PPO/GRPO so the reward's scale does
// not set the step size. Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "tune/core/json.h"

namespace tune::reward {

class Normalizer {
 public:
  enum class Mode { none, fixed, running };

  static Normalizer none() { return Normalizer(Mode::none, 0.0, 1.0); }
  static Normalizer fixed(double mean, double std);  // std > 0
  static Normalizer running();

  // running: first adds the batch to the statistics, then normalises it with them (so the first
  // batch is normalised by its own mean / std). A std below 1e-8 (one score, or all equal)
  // divides by 1: the scores are only centred.
  std::vector<double> apply(const std::vector<double>& scores);

  Mode mode() const { return mode_; }
  double mean() const;
  double std() const;
  int64_t count() const { return count_; }

  // running: {count, mean, m2}, for a resume that continues the same statistics.
  Json state() const;
  void restore(const Json& state);

 private:
  Normalizer(Mode mode, double mean, double std) : mode_(mode), mean_(mean), fixed_std_(std) {}
  Mode mode_;
  double mean_ = 0.0;
  double fixed_std_ = 1.0;
  double m2_ = 0.0;  // running: sum of squared deviations (Welford / Chan)
  int64_t count_ = 0;
};

}  // namespace tune::reward

#pragma once
// RL pathologies read from the metric stream (practitioner-advice.md, "Symptoms"), each reported
// once with the evidence and the usual remedy. Metrics read (missing ones disable their rules):
// reward, kl, entropy, completion_length.
//   kl_explosion      reward rising while the KL to the reference grows past kl_high -> raise beta
//   kl_flat_reward    KL near zero and the reward flat                -> lower beta, check the lr
//   length_drift      completion length halved or doubled             -> length penalty; RM length bias
//   entropy_collapse  entropy fell below a third of its start         -> entropy bonus or clip-higher
//   reward_flat       reward flat from the start                      -> probe the model first (tune probe)
// Torch-free, tested on synthetic streams.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tune/algo/symptoms.h"

namespace tune::algo {

struct RlSymptomConfig {
  int64_t min_steps = 20;         // no verdict before this many observations
  int64_t window = 10;            // observations averaged at the start and at the end
  int64_t flat_after = 50;        // reward_flat is judged once, at this many observations (RL starts slowly)
  double kl_high = 0.5;           // per-token KL (nats) that counts as exploding
  double kl_low = 1e-4;           // per-token KL that counts as none
  double flat_reward = 0.02;      // |end - start| of the windowed reward below this: flat
  double length_factor = 2.0;     // windowed length changed by this factor either way
  double entropy_floor = 1.0 / 3; // windowed entropy below this share of its start
};

class RlSymptomDetector {
 public:
  explicit RlSymptomDetector(RlSymptomConfig config = {}) : config_(config) {}
  std::vector<Symptom> observe(int64_t step, const std::map<std::string, double>& metrics);
  const std::vector<Symptom>& reported() const { return reported_; }

 private:
  double start_mean(const std::string& key) const;
  double end_mean(const std::string& key) const;
  bool has(const std::string& key) const;
  void report(std::vector<Symptom>& out, Symptom s);

  RlSymptomConfig config_;
  std::map<std::string, std::vector<double>> series_;
  int64_t observations_ = 0;
  std::set<std::string> fired_;
  std::vector<Symptom> reported_;
};

}  // namespace tune::algo

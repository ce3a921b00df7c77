#pragma once
// RL pathologies read from the metric stream (practitioner-advice.md, "Symptoms"), each reported
// once with the evidence and the usual remedy. Metrics read (missing ones disable their rules):
// reward, kl, entropy, completion_length; PPO adds value/loss and reward_std, and held-out quality
// through observe_heldout.
//   kl_explosion      reward rising while the KL to the reference grows past kl_high -> raise beta
//   kl_flat_reward    KL near zero and the reward flat                -> lower beta, check the lr
//   length_drift      completion length halved or doubled             -> length penalty; RM length bias
//   entropy_collapse  entropy fell below a third of its start         -> entropy bonus or clip-higher
//   reward_flat       reward flat from the start                      -> probe the model first (tune probe)
//   value_oscillation value loss oscillating while the reward varies a lot -> normalise rewards, whiten advantages
//   reward_hacking    the training reward keeps rising while held-out quality falls -> split the reward,
//                     add penalties, retrain the RM with the hacked samples as negatives
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
  double value_loss_cv = 0.5;     // value_oscillation: std / mean of value/loss over the last 2 windows
  double reward_std_high = 1.5;   // ... while the windowed reward_std is above this
  double hack_drop = 0.05;        // reward_hacking: held-out quality this far below its best
  std::string trainer = "grpo";   // names the keys in the remedies: grpo | ppo
};

class RlSymptomDetector {
 public:
  explicit RlSymptomDetector(RlSymptomConfig config = {}) : config_(config) {}
  std::vector<Symptom> observe(int64_t step, const std::map<std::string, double>& metrics);
  // A held-out quality measurement (e.g. eval_pass@1, higher is better) at `step`.
  std::vector<Symptom> observe_heldout(int64_t step, double quality);
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
  double best_heldout_ = -1e300;
  double reward_at_best_ = 0;
  bool has_best_ = false;
  std::vector<Symptom> reported_;
};

}  // namespace tune::algo

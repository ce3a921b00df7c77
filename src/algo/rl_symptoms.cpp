#include "tune/algo/rl_symptoms.h"

#include <algorithm>
#include <cmath>

#include "tune/core/str.h"

namespace tune::algo {

bool RlSymptomDetector::has(const std::string& key) const {
  auto it = series_.find(key);
  return it != series_.end() && static_cast<int64_t>(it->second.size()) >= 2 * config_.window;
}

double RlSymptomDetector::start_mean(const std::string& key) const {
  const auto& v = series_.at(key);
  const auto n = static_cast<std::ptrdiff_t>(std::min<size_t>(v.size(), static_cast<size_t>(config_.window)));
  double s = 0;
  for (auto it = v.begin(); it != v.begin() + n; ++it) s += *it;
  return s / static_cast<double>(n);
}

double RlSymptomDetector::end_mean(const std::string& key) const {
  const auto& v = series_.at(key);
  const auto n = static_cast<std::ptrdiff_t>(std::min<size_t>(v.size(), static_cast<size_t>(config_.window)));
  double s = 0;
  for (auto it = v.end() - n; it != v.end(); ++it) s += *it;
  return s / static_cast<double>(n);
}

void RlSymptomDetector::report(std::vector<Symptom>& out, Symptom s) {
  if (!fired_.insert(s.id).second) return;
  reported_.push_back(s);
  out.push_back(std::move(s));
}

std::vector<Symptom> RlSymptomDetector::observe(int64_t step, const std::map<std::string, double>& metrics) {
  for (const char* key : {"reward", "kl", "entropy", "completion_length", "value/loss", "reward_std"}) {
    auto it = metrics.find(key);
    if (it != metrics.end() && std::isfinite(it->second)) series_[key].push_back(it->second);
  }
  ++observations_;
  std::vector<Symptom> out;
  if (observations_ < config_.min_steps) return out;
  const bool reward = has("reward");
  const double r0 = reward ? start_mean("reward") : 0, r1 = reward ? end_mean("reward") : 0;
  const bool reward_flat = reward && std::abs(r1 - r0) < config_.flat_reward;

  if (has("kl")) {
    const double kl1 = end_mean("kl");
    if (reward && r1 > r0 + config_.flat_reward && kl1 > config_.kl_high)
      report(out, {"kl_explosion", step,
                   str("reward rose ", fixed(r0, 3), " -> ", fixed(r1, 3), " while the per-token KL to the reference "
                       "reached ", fixed(kl1, 3), " (> ", config_.kl_high, ")"),
                   config_.trainer == "ppo"
                       ? "the policy is drifting away from the reference to earn reward (likely hacking): raise kl.init "
                         "(or use kl.kind adaptive with a kl.target), lower the learning rate, and read samples.jsonl"
                       : "the policy is drifting away from the reference to earn reward (likely hacking): raise grpo.beta "
                         "(or the KL coefficient), lower the learning rate, and read samples.jsonl"});
    if (reward_flat && kl1 < config_.kl_low)
      report(out, {"kl_flat_reward", step,
                   str("the per-token KL stays at ", fixed(kl1, 6), " and the reward is flat (", fixed(r0, 3), " -> ",
                       fixed(r1, 3), ")"),
                   config_.trainer == "ppo"
                       ? "the policy is not moving: lower the KL coefficient (kl.init), check that the learning rate is "
                         "not too small for the method (~1e-6 full, ~1e-5 LoRA) and that the scores vary"
                       : "the policy is not moving: lower beta, check that the learning rate is not too small for the "
                         "method (~1e-6 full, ~1e-5 LoRA) and that rewards vary within groups"});
  }
  if (has("completion_length")) {
    const double l0 = start_mean("completion_length"), l1 = end_mean("completion_length");
    if (l0 > 0 && (l1 > l0 * config_.length_factor || l1 * config_.length_factor < l0))
      report(out, {"length_drift", step,
                   str("mean completion length went ", fixed(l0, 1), " -> ", fixed(l1, 1), " tokens"),
                   l1 > l0 ? "lengths exploding: add a length or overlong penalty, check the reward model's length bias, "
                             "mask truncated completions (" + config_.trainer + ".mask_truncated)"
                           : "lengths collapsing: the reward may pay for short answers; check the reward and samples.jsonl"});
  }
  if (has("entropy")) {
    const double e0 = start_mean("entropy"), e1 = end_mean("entropy");
    if (e0 > 0 && e1 < e0 * config_.entropy_floor)
      report(out, {"entropy_collapse", step, str("policy entropy fell ", fixed(e0, 3), " -> ", fixed(e1, 3), " nats/token"),
                   config_.trainer == "ppo"
                       ? "exploration is collapsing: raise ppo.clip_high (clip-higher 0.28), add an entropy bonus "
                         "(ppo.entropy_coef), or lower the learning rate"
                       : "exploration is collapsing: raise clip_high (DAPO clip-higher 0.28), add an entropy bonus "
                         "(grpo.entropy_coef), or lower the learning rate"});
  }
  if (has("value/loss") && has("reward_std")) {
    const auto& v = series_.at("value/loss");
    const size_t n = std::min(v.size(), static_cast<size_t>(2 * config_.window));
    double m = 0, s2 = 0;
    for (size_t i = v.size() - n; i < v.size(); ++i) m += v[i];
    m /= static_cast<double>(n);
    for (size_t i = v.size() - n; i < v.size(); ++i) s2 += (v[i] - m) * (v[i] - m);
    const double cv = m > 0 ? std::sqrt(s2 / static_cast<double>(n)) / m : 0.0;
    const double rs = end_mean("reward_std");
    if (cv > config_.value_loss_cv && rs > config_.reward_std_high)
      report(out, {"value_oscillation", step,
                   str("the value loss oscillates (std / mean ", fixed(cv, 2), " over the last ", n,
                       " steps) while the reward std is ", fixed(rs, 3)),
                   "the critic chases a high-variance target: normalise the reward-model scores (reward.terms[].normalize: "
                   "stats or running), keep ppo.whiten_advantages on, clip scores (ppo.score_clip), lower critic.lr"});
  }
  if (reward_flat && !fired_.count("kl_flat_reward") && observations_ == config_.flat_after)
    report(out, {"reward_flat", step,
                 str("the reward has not moved since the start (", fixed(r0, 3), " -> ", fixed(r1, 3), ")"),
                 "RL only sharpens what the model can already do: run tune probe on the base model (below ~20% correct, "
                 "SFT first or pick a stronger model), and check that groups have reward variance"});
  return out;
}

std::vector<Symptom> RlSymptomDetector::observe_heldout(int64_t step, double quality) {
  std::vector<Symptom> out;
  if (!std::isfinite(quality)) return out;
  const bool reward = has("reward");
  const double r = reward ? end_mean("reward") : 0;
  if (!has_best_ || quality > best_heldout_) {
    has_best_ = true;
    best_heldout_ = quality;
    reward_at_best_ = r;
    return out;
  }
  if (reward && best_heldout_ - quality >= config_.hack_drop && r > reward_at_best_ + config_.flat_reward)
    report(out, {"reward_hacking", step,
                 str("the training reward rose ", fixed(reward_at_best_, 3), " -> ", fixed(r, 3),
                     " while held-out quality fell from its best ", fixed(best_heldout_, 3), " to ", fixed(quality, 3)),
                 "the policy is exploiting the reward (reward hacking): read samples.jsonl, split the reward into terms "
                 "and add penalties for what it exploits, raise the KL coefficient, and retrain the reward model with "
                 "the hacked samples as negatives"});
  return out;
}

}  // namespace tune::algo

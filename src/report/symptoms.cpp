// The watcher: records every finite value, then runs the rules of symptom_rules() that apply to
// its trainer and have not fired yet.
#include "tune/report/symptoms.h"

#include <algorithm>
#include <cmath>

namespace tune::report {

const std::vector<MetricHistory::Point>* MetricHistory::step_series(const std::string& key) const {
  auto it = steps.find(key);
  return it == steps.end() || it->second.empty() ? nullptr : &it->second;
}

const std::vector<MetricHistory::Point>* MetricHistory::eval_series(const std::string& key) const {
  auto it = evals.find(key);
  return it == evals.end() || it->second.empty() ? nullptr : &it->second;
}

double slope(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return 0.0;
  double mx = 0, my = 0;
  for (const auto& [x, y] : points) {
    mx += x;
    my += y;
  }
  mx /= static_cast<double>(points.size());
  my /= static_cast<double>(points.size());
  double sxy = 0, sxx = 0;
  for (const auto& [x, y] : points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  return sxx > 0 ? sxy / sxx : 0.0;
}

std::string heldout_quality_key(const std::string& trainer) {
  return trainer == "grpo" || trainer == "ppo" ? "eval_pass@1" : "";
}

SymptomWatcher::SymptomWatcher(std::string trainer, SymptomThresholds thresholds)
    : trainer_(std::move(trainer)), thresholds_(thresholds) {}

std::vector<Symptom> SymptomWatcher::observe(int64_t step, const std::map<std::string, double>& metrics) {
  // The rules read the policy's behaviour. During PPO's critic warm-up the policy does not move (its KL
  // is 0 by construction and its reward flat), which would read as a policy that cannot learn.
  if (auto frozen = metrics.find("policy_frozen"); frozen != metrics.end() && frozen->second != 0) return {};
  for (const auto& [key, value] : metrics)
    if (std::isfinite(value)) history_.steps[key].push_back({step, value});
  ++history_.observations;
  return check(Trigger::step, step);
}

std::vector<Symptom> SymptomWatcher::observe_eval(int64_t step, const std::map<std::string, double>& metrics) {
  for (const auto& [key, value] : metrics)
    if (std::isfinite(value)) history_.evals[key].push_back({step, value});
  const std::string quality_key = heldout_quality_key(trainer_);
  if (auto it = metrics.find(quality_key); !quality_key.empty() && it != metrics.end() && std::isfinite(it->second)) {
    // The training reward as it stands now, over the RL window (what reward_hacking compares).
    MetricHistory::Heldout h{step, it->second, false, 0.0};
    const auto window = static_cast<size_t>(std::max<int64_t>(1, thresholds_.rl.window));
    if (const auto* r = history_.step_series("reward"); r && r->size() >= 2 * window) {
      double sum = 0;
      for (size_t i = r->size() - window; i < r->size(); ++i) sum += (*r)[i].value;
      h.has_reward = true;
      h.reward = sum / static_cast<double>(window);
    }
    history_.heldout.push_back(h);
  }
  return check(Trigger::eval, step);
}

std::vector<Symptom> SymptomWatcher::check(Trigger trigger, int64_t step) {
  std::vector<Symptom> out;
  for (const auto& rule : symptom_rules()) {
    if (rule.trigger != trigger || fired_.count(rule.id)) continue;
    if (std::find(rule.trainers.begin(), rule.trainers.end(), trainer_) == rule.trainers.end()) continue;
    RuleContext ctx{history_, thresholds_, trainer_, step, fired_};
    if (auto found = rule.check(ctx)) {
      fired_.insert(rule.id);
      Symptom s{rule.id, step, std::move(found->message), std::move(found->remedy), rule.cause};
      reported_.push_back(s);
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace tune::report

#include "tune/algo/kl_controller.h"

#include <algorithm>
#include <cmath>

#include "tune/core/error.h"

namespace tune::algo {

Json KlController::state() const { return Json{{"kind", std::string(kind())}, {"value", value_}, {"progress", progress_}}; }

void KlController::load_state(const Json& state) {
  TUNE_CHECK(state.is_object() && state.contains("kind") && state.contains("value"),
             "KL controller state: expected an object with kind and value, got ", state.dump());
  const std::string k = state["kind"].get<std::string>();
  TUNE_CHECK(k == kind(), "KL controller state is for a '", k, "' controller but this run configures '", kind(),
             "' (kl.kind changed since the checkpoint?)");
  value_ = state["value"].get<double>();
  progress_ = state.value("progress", 0.0);
}

FixedKlController::FixedKlController(double value) : KlController(value) {
  if (!(value >= 0)) usage_fail("config error: kl.init must be >= 0, got ", value);
}

void FixedKlController::update(double, int64_t, double progress) { progress_ = progress; }

AdaptiveKlController::AdaptiveKlController(double init, double target, double horizon)
    : KlController(init), target_(target), horizon_(horizon) {
  if (!(init > 0)) usage_fail("config error: kl.init must be > 0 for the adaptive controller (it scales), got ", init);
  if (!(target > 0)) usage_fail("config error: kl.target must be > 0, got ", target);
  if (!(horizon > 0)) usage_fail("config error: kl.horizon must be > 0, got ", horizon);
}

void AdaptiveKlController::update(double observed_kl, int64_t samples, double progress) {
  TUNE_CHECK(std::isfinite(observed_kl), "adaptive KL controller: observed KL is ", observed_kl);
  TUNE_CHECK(samples >= 0, "adaptive KL controller: negative sample count ", samples);
  const double error = std::clamp(observed_kl / target_ - 1.0, -0.2, 0.2);
  value_ *= 1.0 + error * static_cast<double>(samples) / horizon_;
  progress_ = progress;
}

ScheduledKlController::ScheduledKlController(std::vector<double> values, std::vector<double> fractions)
    : KlController(values.empty() ? 0.0 : values.front()), values_(std::move(values)) {
  if (values_.empty()) usage_fail("config error: kl.values must list the coefficient of each phase for kind schedule");
  if (fractions.size() != values_.size())
    usage_fail("config error: kl.fractions has ", fractions.size(), " entries but kl.values has ", values_.size());
  double end = 0;
  for (size_t k = 0; k < values_.size(); ++k) {
    if (!(values_[k] >= 0)) usage_fail("config error: kl.values[", k, "] must be >= 0, got ", values_[k]);
    if (!(fractions[k] > 0)) usage_fail("config error: kl.fractions[", k, "] must be > 0, got ", fractions[k]);
    end += fractions[k];
    ends_.push_back(end);
  }
  if (std::abs(end - 1.0) > 1e-6) usage_fail("config error: kl.fractions must sum to 1, they sum to ", end);
  ends_.back() = 1.0;
  value_ = value_at(0.0);
}

double ScheduledKlController::value_at(double progress) const {
  for (size_t k = 0; k < ends_.size(); ++k)
    if (progress < ends_[k]) return values_[k];
  return values_.back();
}

void ScheduledKlController::update(double, int64_t, double progress) {
  progress_ = progress;
  value_ = value_at(progress);
}

std::unique_ptr<KlController> make_kl_controller(const KlControlConfig& c) {
  if (c.kind == "fixed") return std::make_unique<FixedKlController>(c.init);
  if (c.kind == "adaptive") return std::make_unique<AdaptiveKlController>(c.init, c.target, c.horizon);
  if (c.kind == "schedule") return std::make_unique<ScheduledKlController>(c.values, c.fractions);
  usage_fail("config error: kl.kind must be fixed, adaptive or schedule, got '", c.kind, "'");
}

}  // namespace tune::algo

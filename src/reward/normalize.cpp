#include "tune/reward/normalize.h"

#include <cmath>

#include "tune/core/error.h"

namespace tune::reward {

namespace {
constexpr double kMinStd = 1e-8;
}

Normalizer Normalizer::fixed(double mean, double std) {
  if (!(std > 0.0) || !std::isfinite(std) || !std::isfinite(mean))
    usage_fail("reward normalisation: std must be a finite number > 0 (got mean ", mean, ", std ", std, ")");
  return Normalizer(Mode::fixed, mean, std);
}

Normalizer Normalizer::running() { return Normalizer(Mode::running, 0.0, 1.0); }

double Normalizer::mean() const { return mode_ == Mode::none ? 0.0 : mean_; }

double Normalizer::std() const {
  switch (mode_) {
    case Mode::none: return 1.0;
    case Mode::fixed: return fixed_std_;
    case Mode::running: {
      const double s = count_ > 1 ? std::sqrt(m2_ / static_cast<double>(count_)) : 0.0;  // population std
      return s < kMinStd ? 1.0 : s;
    }
  }
  return 1.0;
}

std::vector<double> Normalizer::apply(const std::vector<double>& scores) {
  if (mode_ == Mode::none) return scores;
  if (mode_ == Mode::running && !scores.empty()) {
    // Chan et al.'s merge of the batch's mean / M2 into the running ones (stable for large counts).
    double batch_mean = 0.0;
    for (double s : scores) batch_mean += s;
    batch_mean /= static_cast<double>(scores.size());
    double batch_m2 = 0.0;
    for (double s : scores) batch_m2 += (s - batch_mean) * (s - batch_mean);
    const double n_a = static_cast<double>(count_), n_b = static_cast<double>(scores.size());
    const double delta = batch_mean - mean_;
    const double n = n_a + n_b;
    mean_ += delta * n_b / n;
    m2_ += batch_m2 + delta * delta * n_a * n_b / n;
    count_ += static_cast<int64_t>(scores.size());
  }
  const double m = mean(), s = std();
  std::vector<double> out;
  out.reserve(scores.size());
  for (double v : scores) out.push_back((v - m) / s);
  return out;
}

Json Normalizer::state() const {
  if (mode_ != Mode::running) return Json::object();
  return {{"count", count_}, {"mean", mean_}, {"m2", m2_}};
}

void Normalizer::restore(const Json& state) {
  if (mode_ != Mode::running || state.empty()) return;
  if (!state.contains("count") || !state.contains("mean") || !state.contains("m2"))
    fail("reward normalisation state needs count, mean and m2, got ", state.dump());
  count_ = state["count"].get<int64_t>();
  mean_ = state["mean"].get<double>();
  m2_ = state["m2"].get<double>();
}

}  // namespace tune::reward

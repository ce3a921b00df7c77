#include <cmath>

#include "tune/core/error.h"
#include "tune/reward/reward.h"

namespace tune::reward {

int64_t Scores::null_count() const {
  int64_t n = 0;
  for (const auto& t : total) n += t ? 0 : 1;
  return n;
}

namespace {

MetricSum sum_of(const std::vector<Score>& values) {
  MetricSum out;
  for (const auto& v : values)
    if (v) {
      out.sum += *v;
      out.count += 1.0;
    }
  return out;
}

}  // namespace

MetricSums Scores::sums() const {
  MetricSums out;
  out.emplace_back("reward/total", sum_of(total));
  for (const auto& t : terms) {
    out.emplace_back("reward/" + t.name, sum_of(t.values));
    for (const auto& [key, s] : t.details) out.emplace_back("reward/" + t.name + "/" + key, s);
  }
  out.emplace_back("reward/null_fraction",
                   MetricSum{static_cast<double>(null_count()), static_cast<double>(total.size())});
  return out;
}

Json Scores::metrics() const {
  Json out = Json::object();
  for (const auto& [key, s] : sums())
    if (s.count > 0) out[key] = s.sum / s.count;
  return out;
}

void Composite::add(std::string name, double weight, std::unique_ptr<Reward> term) {
  TUNE_CHECK(term, "reward term '", name, "' is empty");
  if (name.empty()) usage_fail("a reward term needs a name");
  if (name == "total" || name == "null_fraction")
    usage_fail("reward term name '", name, "' is reserved (reward/", name, " is a metric of the composite)");
  if (!std::isfinite(weight)) usage_fail("reward term '", name, "': weight must be finite");
  for (const auto& t : terms_)
    if (t.name == name) usage_fail("reward term name '", name, "' is used twice (each term is logged as reward/<name>)");
  terms_.push_back({std::move(name), weight, std::move(term)});
}

Scores Composite::score_terms(std::span<const Sample> batch) {
  Scores out;
  out.total.assign(batch.size(), 0.0);
  for (auto& term : terms_) {
    std::vector<Score> values = term.reward->score(batch);
    if (values.size() != batch.size())
      fail("reward term '", term.name, "' returned ", values.size(), " scores for ", batch.size(), " samples");
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i] && !std::isfinite(*values[i]))
        fail("reward term '", term.name, "' gave a non-finite value (", *values[i], ") for sample ", i);
      if (term.weight == 0.0 || !out.total[i]) continue;
      if (values[i]) *out.total[i] += term.weight * *values[i];
      else out.total[i].reset();
    }
    out.terms.push_back({term.name, term.weight, std::move(values), term.reward->details()});
  }
  if (terms_.empty()) out.total.assign(batch.size(), std::nullopt);  // nothing judged them
  return out;
}

Json Composite::state() const {
  Json out = Json::object();
  for (const auto& t : terms_) {
    Json s = t.reward->state();
    if (!s.empty()) out[t.name] = std::move(s);
  }
  return out;
}

void Composite::restore(const Json& state) {
  if (!state.is_object()) fail("reward state must be an object of term states");
  for (auto it = state.begin(); it != state.end(); ++it) {
    bool found = false;
    for (auto& t : terms_)
      if (t.name == it.key()) {
        t.reward->restore(it.value());
        found = true;
      }
    if (!found) fail("saved reward state names term '", it.key(), "', which this configuration does not have");
  }
}

std::vector<std::string> Composite::names() const {
  std::vector<std::string> out;
  for (const auto& t : terms_) out.push_back(t.name);
  return out;
}

}  // namespace tune::reward

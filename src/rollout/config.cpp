#include "tune/rollout/config.h"

namespace tune::rollout {
namespace {

// Runs every field's check of a visit() over values set in code (the YAML reader runs the same
// checks while binding).
struct CheckFields {
  const char* section;
  template <class T>
  void operator()(const char* key, T& field, const char* = "", std::type_identity_t<config::Check<T>> check = {}) {
    if (!check) return;
    std::string problem = check(field);
    if (!problem.empty()) usage_fail("config error: ", section, ".", key, " ", problem);
  }
};

template <class S>
void check_all(const S& cfg, const char* section) {
  CheckFields checker{section};
  const_cast<S&>(cfg).visit(checker);  // CheckFields only reads
}

}  // namespace

config::Check<double> SamplingConfig::check_top_p() {
  return [](const double& p) { return p > 0.0 && p <= 1.0 ? std::string() : std::string("must be in (0, 1]"); };
}

config::Check<std::vector<std::string>> SamplingConfig::check_stop_strings() {
  return [](const std::vector<std::string>& stops) {
    for (const auto& s : stops)
      if (s.empty()) return std::string("must not hold an empty string");
    return std::string();
  };
}

void SamplingConfig::validate() const { check_all(*this, "rollout"); }
void EngineConfig::validate() const { check_all(*this, "rollout"); }

}  // namespace tune::rollout

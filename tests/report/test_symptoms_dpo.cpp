// The DPO rules of the symptom table on synthetic metric streams: each warning must fire on the stream that
// shows its symptom, and stay silent on a healthy run.
#include <gtest/gtest.h>

#include <cmath>

#include "tune/report/symptoms.h"

namespace {

using namespace tune::report;

struct Stream {
  std::vector<std::map<std::string, double>> steps;  // step i + 1
};

std::vector<Symptom> feed(const Stream& s, DpoThresholds config = {}) {
  SymptomThresholds t;
  t.dpo = config;
  SymptomWatcher d("dpo", t);
  std::vector<Symptom> all;
  for (size_t i = 0; i < s.steps.size(); ++i)
    for (auto& x : d.observe(static_cast<int64_t>(i + 1), s.steps[i])) all.push_back(x);
  return all;
}

bool has(const std::vector<Symptom>& v, const std::string& id) {
  for (const auto& s : v)
    if (s.id == id) return true;
  return false;
}

// A healthy run: margin climbs to ~1.5 over 200 steps, loss falls gently, chosen log-probs steady.
Stream healthy() {
  Stream s;
  for (int i = 1; i <= 200; ++i) {
    double margin = 2.0 * (1 - std::exp(-i / 150.0));
    s.steps.push_back({{"loss", std::log1p(std::exp(-margin))}, {"rewards/margins", margin}, {"logps/chosen", -20.0 + 0.002 * i}});
  }
  return s;
}

// beta too high: the margin creeps (0.0005 per step) and the loss sits near log 2.
Stream slow_margin() {
  Stream s;
  for (int i = 1; i <= 200; ++i) {
    double margin = 0.0005 * i;
    s.steps.push_back({{"loss", std::log1p(std::exp(-margin))}, {"rewards/margins", margin}, {"logps/chosen", -20.0}});
  }
  return s;
}

// beta too low / lr too high: loss collapses within 30 steps while chosen log-probs fall by 8 nats.
Stream collapse() {
  Stream s;
  for (int i = 1; i <= 60; ++i) {
    double margin = 0.3 * i;
    s.steps.push_back({{"loss", std::log1p(std::exp(-margin))}, {"rewards/margins", margin}, {"logps/chosen", -20.0 - 0.25 * i}});
  }
  return s;
}

TEST(DpoSymptoms, HealthyRunIsSilent) { EXPECT_TRUE(feed(healthy()).empty()); }

TEST(DpoSymptoms, SlowMarginFires) {
  auto v = feed(slow_margin());
  ASSERT_TRUE(has(v, "margin_slow"));
  EXPECT_FALSE(has(v, "chosen_collapse"));
  EXPECT_NE(v[0].remedy.find("lower dpo.beta"), std::string::npos);
  EXPECT_GE(v[0].step, DpoThresholds{}.min_steps);  // never before the warm-up
}

TEST(DpoSymptoms, SlowMarginNeedsEnoughSteps) {
  Stream s = slow_margin();
  s.steps.resize(20);  // too early to judge
  EXPECT_TRUE(feed(s).empty());
}

TEST(DpoSymptoms, CollapseFires) {
  auto v = feed(collapse());
  ASSERT_TRUE(has(v, "chosen_collapse"));
  EXPECT_FALSE(has(v, "margin_slow"));
  EXPECT_NE(v[0].remedy.find("raise dpo.beta"), std::string::npos);
}

TEST(DpoSymptoms, FastLossWithRisingChosenIsFine) {
  // The loss falls just as fast, but the chosen answers become MORE likely: the good case.
  Stream s = collapse();
  for (size_t i = 0; i < s.steps.size(); ++i) s.steps[i]["logps/chosen"] = -20.0 + 0.1 * static_cast<double>(i);
  EXPECT_TRUE(feed(s).empty());
}

TEST(DpoSymptoms, SlowLossDeclineWithFallingChosenIsNotCollapse) {
  // Chosen log-probs drift down (common in DPO) but the loss falls slowly: no collapse warning.
  Stream s = healthy();
  for (size_t i = 0; i < s.steps.size(); ++i) s.steps[i]["logps/chosen"] = -20.0 - 0.05 * static_cast<double>(i);
  EXPECT_FALSE(has(feed(s), "chosen_collapse"));
}

// The shape of a real collapse (tiny model, lr 5e-4, no NLL term): the loss only creeps down
// (0.69 -> 0.60 in 100 steps) while logps/chosen sinks from -4.4 to -11, with per-batch noise.
Stream slow_collapse() {
  Stream s;
  for (int i = 1; i <= 120; ++i) {
    const double noise = (i % 2 ? 1 : -1) * 0.02;
    const double t = std::min(i, 100) / 100.0;
    s.steps.push_back({{"loss", 0.69 - 0.09 * t + noise},
                       {"rewards/margins", 1.0 + 0.3 * t},  // a healthy-looking margin: not the slow-margin warning
                       {"logps/chosen", -4.4 - 6.6 * t + 20 * noise}});
  }
  return s;
}

TEST(DpoSymptoms, SlowLargeCollapseFires) {
  auto v = feed(slow_collapse());
  ASSERT_TRUE(has(v, "chosen_collapse"));
  EXPECT_NE(v[0].message.find("much less likely"), std::string::npos);
  EXPECT_GT(v[0].step, 20);  // needs two smoothing windows of evidence
}

TEST(DpoSymptoms, ChosenFallingWhileLossRisesIsNotThisSymptom) {
  Stream s = slow_collapse();
  for (size_t i = 0; i < s.steps.size(); ++i) s.steps[i]["loss"] = 0.60 + 0.001 * static_cast<double>(i);
  EXPECT_FALSE(has(feed(s), "chosen_collapse"));
}

TEST(DpoSymptoms, ChosenFallingByLessThanItsMagnitudeIsNotCollapse) {
  // -200 -> -260 nats per sequence: the usual drift of a long-answer DPO run, not a collapse.
  Stream s = slow_collapse();
  for (size_t i = 0; i < s.steps.size(); ++i)
    s.steps[i]["logps/chosen"] = -200.0 - 0.5 * static_cast<double>(std::min<size_t>(i, 100));
  EXPECT_FALSE(has(feed(s), "chosen_collapse"));
}

TEST(DpoSymptoms, EachSymptomReportedOnce) {
  SymptomWatcher d("dpo");
  auto s = slow_margin();
  int count = 0;
  for (size_t i = 0; i < s.steps.size(); ++i) count += static_cast<int>(d.observe(static_cast<int64_t>(i + 1), s.steps[i]).size());
  EXPECT_EQ(count, 1);
  EXPECT_EQ(d.reported().size(), 1u);
}

TEST(DpoSymptoms, SlopeHandWorked) {
  EXPECT_DOUBLE_EQ(slope({{0, 1}, {1, 3}, {2, 5}}), 2.0);
  EXPECT_DOUBLE_EQ(slope({{1, 1}}), 0.0);
}

}  // namespace

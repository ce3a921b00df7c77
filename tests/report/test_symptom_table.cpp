// Every rule of the symptom table has a synthetic stream that must fire it and one that must not;
// a rule added to the table without its two streams fails TableRulesAllHaveStreams.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tune/report/symptoms.h"

namespace {

using namespace tune::report;
using Metrics = std::map<std::string, double>;

struct Event {
  bool eval;
  int64_t step;
  Metrics metrics;
};
using Stream = std::vector<Event>;

struct Case {
  std::string trainer;
  std::function<Stream()> fires;
  std::function<Stream()> quiet;
};

Stream steps(int n, const std::function<Metrics(int)>& at) {
  Stream s;
  for (int i = 1; i <= n; ++i) s.push_back({false, i, at(i)});
  return s;
}

std::vector<Symptom> feed(const std::string& trainer, const Stream& stream) {
  SymptomWatcher w(trainer);
  for (const auto& e : stream) e.eval ? w.observe_eval(e.step, e.metrics) : w.observe(e.step, e.metrics);
  return w.reported();
}

bool fired(const std::vector<Symptom>& v, const std::string& id) {
  for (const auto& s : v)
    if (s.id == id) return true;
  return false;
}

// RL held-out quality falling (fires) or rising (quiet) while the reward keeps rising.
Stream heldout(bool falls) {
  Stream s;
  for (int i = 1; i <= 60; ++i) {
    s.push_back({false, i, {{"reward", 0.02 * i}, {"completion_length", 20}}});
    if (i % 10 == 0) {
      const double q = !falls ? 0.2 + 0.01 * i : i <= 20 ? 0.3 + 0.01 * i : 0.5 - 0.05 * (i - 20) / 10.0;
      s.push_back({true, i, {{"eval_pass@1", q}}});
    }
  }
  return s;
}

// SFT: the training loss falls 2.0 -> 0.5 over 300 steps; exact match at steps 100, 200, 300.
Stream sft_evals(std::vector<double> exact_match, std::vector<double> hit_limit = {0, 0, 0}) {
  Stream s;
  for (int i = 1; i <= 300; ++i) {
    s.push_back({false, i, {{"loss", 2.0 - 1.5 * i / 300.0}}});
    if (i % 100 == 0) {
      const size_t k = static_cast<size_t>(i / 100 - 1);
      s.push_back({true, i, {{"eval_loss", 1.0}, {"eval_exact_match", exact_match[k]}, {"eval_hit_limit", hit_limit[k]}}});
    }
  }
  return s;
}

const std::map<std::string, Case>& cases() {
  static const std::map<std::string, Case> table = {
      {"margin_slow",
       {"dpo", [] { return steps(200, [](int i) { return Metrics{{"rewards/margins", 0.0005 * i}, {"loss", 0.69}}; }); },
        [] {
          return steps(200, [](int i) {
            const double m = 2.0 * (1 - std::exp(-i / 150.0));
            return Metrics{{"rewards/margins", m}, {"loss", std::log1p(std::exp(-m))}, {"logps/chosen", -20.0}};
          });
        }}},
      {"chosen_collapse",
       {"dpo",
        [] {
          return steps(60, [](int i) {
            return Metrics{{"loss", std::log1p(std::exp(-0.3 * i))}, {"rewards/margins", 0.3 * i}, {"logps/chosen", -20.0 - 0.25 * i}};
          });
        },
        [] {
          return steps(60, [](int i) {
            return Metrics{{"loss", std::log1p(std::exp(-0.3 * i))}, {"rewards/margins", 0.3 * i}, {"logps/chosen", -20.0 + 0.1 * i}};
          });
        }}},
      {"kl_explosion",
       {"grpo", [] { return steps(60, [](int i) { return Metrics{{"reward", 0.1 * i}, {"kl", 0.02 * i}}; }); },
        [] { return steps(60, [](int i) { return Metrics{{"reward", 0.1 * i}, {"kl", 0.05}}; }); }}},
      {"kl_flat_reward",
       {"grpo", [] { return steps(60, [](int) { return Metrics{{"reward", 0.3}, {"kl", 1e-6}}; }); },
        [] { return steps(60, [](int) { return Metrics{{"reward", 0.3}, {"kl", 0.05}}; }); }}},
      {"length_drift",
       {"ppo", [] { return steps(60, [](int i) { return Metrics{{"completion_length", 10.0 + i}}; }); },
        [] { return steps(60, [](int i) { return Metrics{{"completion_length", 20 + 0.1 * i}}; }); }}},
      {"entropy_collapse",
       {"grpo", [] { return steps(60, [](int i) { return Metrics{{"entropy", 2.0 * std::exp(-0.08 * i)}}; }); },
        [] { return steps(60, [](int i) { return Metrics{{"entropy", 1.0 - 0.005 * i}}; }); }}},
      {"value_oscillation",
       {"ppo",
        [] { return steps(60, [](int i) { return Metrics{{"reward_std", 3.0}, {"value/loss", i % 2 ? 2.0 : 0.1}}; }); },
        [] { return steps(60, [](int i) { return Metrics{{"reward_std", 1.0}, {"value/loss", 1.0 + 0.05 * (i % 2)}}; }); }}},
      {"reward_flat",
       {"grpo", [] { return steps(60, [](int) { return Metrics{{"reward", 0.05}}; }); },
        [] { return steps(60, [](int i) { return Metrics{{"reward", 0.05 + (i > 30 ? 0.01 * (i - 30) : 0.0)}}; }); }}},
      {"truncation",
       {"grpo", [] { return steps(40, [](int) { return Metrics{{"truncated", 0.9}}; }); },
        [] { return steps(40, [](int) { return Metrics{{"truncated", 0.1}}; }); }}},
      {"zero_variance_groups",
       {"grpo", [] { return steps(40, [](int) { return Metrics{{"zero_variance_groups", 0.95}}; }); },
        [] { return steps(40, [](int) { return Metrics{{"zero_variance_groups", 0.3}}; }); }}},
      {"explained_variance_low",
       {"ppo", [] { return steps(40, [](int) { return Metrics{{"explained_variance", -0.5}}; }); },
        [] { return steps(40, [](int i) { return Metrics{{"explained_variance", -0.5 + 0.03 * i}}; }); }}},
      {"reward_hacking", {"grpo", [] { return heldout(true); }, [] { return heldout(false); }}},
      {"loss_spike",
       {"sft",
        [] { return steps(31, [](int i) { return Metrics{{"loss", i == 31 ? 4.0 : 1.0 - 0.005 * i}}; }); },
        [] { return steps(31, [](int i) { return Metrics{{"loss", 1.0 + (i % 3 ? 0.1 : -0.1)}}; }); }}},
      {"overfitting",
       {"sft", [] { return sft_evals({0.5, 0.6, 0.45}); }, [] { return sft_evals({0.5, 0.6, 0.62}); }}},
      {"answers_cut",
       {"sft", [] { return sft_evals({0.1, 0.2, 0.3}, {1.0, 0.5, 0.4}); },
        [] { return sft_evals({0.1, 0.2, 0.3}, {0.0, 0.0, 0.05}); }}},
  };
  return table;
}

TEST(SymptomTable, TableRulesAllHaveStreams) {
  for (const auto& rule : symptom_rules()) {
    EXPECT_TRUE(cases().count(rule.id)) << rule.id << " has no test streams";
    EXPECT_FALSE(rule.fires_when.empty() || rule.cause.empty() || rule.source.empty() || rule.metrics.empty()) << rule.id;
    EXPECT_FALSE(rule.trainers.empty()) << rule.id;
  }
  EXPECT_EQ(cases().size(), symptom_rules().size());
}

TEST(SymptomTable, EachRuleFiresOnItsStream) {
  for (const auto& [id, c] : cases()) {
    auto found = feed(c.trainer, c.fires());
    ASSERT_TRUE(fired(found, id)) << id << " did not fire";
    for (const auto& s : found)
      if (s.id == id) {
        EXPECT_FALSE(s.message.empty() || s.remedy.empty()) << id;
        EXPECT_EQ(s.cause, find_rule(id)->cause) << id;
      }
  }
}

TEST(SymptomTable, EachRuleStaysQuietOnItsHealthyStream) {
  for (const auto& [id, c] : cases()) EXPECT_FALSE(fired(feed(c.trainer, c.quiet()), id)) << id << " fired on the quiet stream";
}

TEST(SymptomTable, RulesOnlyWatchTheirTrainers) {
  // A DPO collapse stream means nothing to an RL watcher; an RL truncation stream nothing to sft.
  EXPECT_FALSE(fired(feed("grpo", cases().at("chosen_collapse").fires()), "chosen_collapse"));
  EXPECT_FALSE(fired(feed("sft", cases().at("truncation").fires()), "truncation"));
  EXPECT_FALSE(fired(feed("grpo", cases().at("explained_variance_low").fires()), "explained_variance_low"));
}

TEST(SymptomTable, LossSpikeNeedsAnAbsoluteRise) {
  // 0.01 -> 0.05 is five times the median, but 0.04 nats: noise at the end of a run, not a spike.
  auto stream = steps(31, [](int i) { return Metrics{{"loss", i == 31 ? 0.05 : 0.01}}; });
  EXPECT_FALSE(fired(feed("sft", stream), "loss_spike"));
}

TEST(SymptomTable, LossSpikeReportsItsStepAndFactor) {
  auto found = feed("dpo", cases().at("loss_spike").fires());
  ASSERT_TRUE(fired(found, "loss_spike"));
  EXPECT_EQ(found[0].step, 31);
  EXPECT_NE(found[0].message.find("4.0000 at step 31"), std::string::npos) << found[0].message;
}

TEST(SymptomTable, OverfittingNeedsTheLossStillFalling) {
  // Quality falls, but so does the model overall (the training loss rises): not overfitting.
  Stream s = sft_evals({0.5, 0.6, 0.45});
  for (auto& e : s)
    if (!e.eval && e.step > 200) e.metrics["loss"] = 1.0 + 0.01 * static_cast<double>(e.step - 200);
  EXPECT_FALSE(fired(feed("sft", s), "overfitting"));
}

TEST(SymptomTable, OverfittingOnEvalLossWhenNoExactMatch) {
  Stream s;
  for (int i = 1; i <= 300; ++i) {
    s.push_back({false, i, {{"loss", 2.0 - 1.5 * i / 300.0}}});
    if (i % 100 == 0) s.push_back({true, i, {{"eval_loss", i == 100 ? 1.0 : i == 200 ? 0.9 : 1.2}}});
  }
  auto found = feed("dpo", s);
  ASSERT_TRUE(fired(found, "overfitting"));
  EXPECT_NE(found[0].message.find("eval_loss went from its best 0.9000 (step 200)"), std::string::npos) << found[0].message;
}

TEST(SymptomTable, AnswersCutIgnoresTheUntrainedStart) {
  Stream s = {{true, 0, {{"eval_hit_limit", 1.0}}}};
  EXPECT_FALSE(fired(feed("sft", s), "answers_cut"));
}

}  // namespace

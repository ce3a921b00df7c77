// The weighted composite (totals, the null rule, weight-0 terms, per-term metrics, state) and the
// `reward:` config section: binding a YAML-shaped tree, errors naming the key, the factory.
#include <gtest/gtest.h>

#include <cmath>

#include "tune/core/config.h"
#include "tune/reward/config.h"

namespace tune::reward {
namespace {

// Returns preset scores, whatever the batch holds; counts its calls.
class Fixed : public Reward {
 public:
  explicit Fixed(std::vector<Score> values) : values_(std::move(values)) {}
  std::vector<Score> score(std::span<const Sample> batch) override {
    ++calls;
    return std::vector<Score>(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(std::min(batch.size(), values_.size())));
  }
  Json state() const override { return saved.empty() ? Json::object() : saved; }
  void restore(const Json& s) override { saved = s; }
  int calls = 0;
  Json saved = Json::object();

 private:
  std::vector<Score> values_;
};

std::vector<Sample> samples(size_t n) { return std::vector<Sample>(n); }

TEST(Composite, WeightedSumNullRuleAndWeightZero) {
  Composite c;
  c.add("correct", 1.0, std::make_unique<Fixed>(std::vector<Score>{1.0, 0.0, 1.0, std::nullopt}));
  c.add("length", 0.5, std::make_unique<Fixed>(std::vector<Score>{-0.2, 0.0, std::nullopt, 0.0}));
  c.add("judge", 0.0, std::make_unique<Fixed>(std::vector<Score>{std::nullopt, 3.0, 3.0, 3.0}));  // logged only
  auto batch = samples(4);
  Scores s = c.score_terms(batch);
  ASSERT_EQ(s.total.size(), 4u);
  EXPECT_DOUBLE_EQ(*s.total[0], 1.0 - 0.1);  // the weight-0 term's null does not exclude it
  EXPECT_DOUBLE_EQ(*s.total[1], 0.0);        // nor does its 3.0 count
  EXPECT_FALSE(s.total[2]);                  // length could not judge: the whole sample is null
  EXPECT_FALSE(s.total[3]);
  EXPECT_EQ(s.null_count(), 2);
  ASSERT_EQ(s.terms.size(), 3u);
  EXPECT_EQ(s.terms[1].name, "length");
  EXPECT_EQ(s.terms[1].values[0], -0.2);  // unweighted
  Json m = s.metrics();
  EXPECT_DOUBLE_EQ(m["reward/total"].get<double>(), 0.45);                // mean of 0.9 and 0.0
  EXPECT_DOUBLE_EQ(m["reward/correct"].get<double>(), 2.0 / 3.0);         // over the 3 it judged
  EXPECT_DOUBLE_EQ(m["reward/length"].get<double>(), -0.2 / 3.0);
  EXPECT_DOUBLE_EQ(m["reward/judge"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(m["reward/null_fraction"].get<double>(), 0.5);
  // The same as sums, for adding up over batches and ranks, in configuration order.
  auto sums = s.sums();
  ASSERT_EQ(sums.size(), 5u);
  EXPECT_EQ(sums[0].first, "reward/total");
  EXPECT_DOUBLE_EQ(sums[0].second.sum, 0.9);
  EXPECT_DOUBLE_EQ(sums[0].second.count, 2.0);
  EXPECT_EQ(sums[2].first, "reward/length");
  EXPECT_DOUBLE_EQ(sums[2].second.count, 3.0);
  EXPECT_EQ(sums[4].first, "reward/null_fraction");
  EXPECT_DOUBLE_EQ(sums[4].second.sum, 2.0);
  EXPECT_DOUBLE_EQ(sums[4].second.count, 4.0);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"correct", "length", "judge"}));
  EXPECT_EQ(c.score(batch).size(), 4u);
}

TEST(Composite, AllNullHasNoMeansAndAnEmptyCompositeJudgesNothing) {
  Composite c;
  c.add("x", 1.0, std::make_unique<Fixed>(std::vector<Score>{std::nullopt, std::nullopt}));
  auto batch = samples(2);
  Json m = c.score_terms(batch).metrics();
  EXPECT_FALSE(m.contains("reward/total"));
  EXPECT_FALSE(m.contains("reward/x"));
  EXPECT_DOUBLE_EQ(m["reward/null_fraction"].get<double>(), 1.0);
  Composite empty;
  EXPECT_EQ(empty.score_terms(batch).null_count(), 2);
  EXPECT_FALSE(Composite().score_terms({}).metrics().contains("reward/null_fraction"));  // no samples
}

TEST(Composite, BadTermsAndNamesAreErrors) {
  Composite c;
  c.add("short", 1.0, std::make_unique<Fixed>(std::vector<Score>{1.0}));
  auto batch = samples(2);
  try {
    c.score_terms(batch);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'short' returned 1 scores for 2 samples"), std::string::npos) << e.what();
  }
  Composite nan;
  nan.add("nan", 1.0, std::make_unique<Fixed>(std::vector<Score>{1.0, std::nan("")}));
  EXPECT_THROW(nan.score_terms(batch), Error);
  EXPECT_THROW(c.add("short", 1.0, std::make_unique<Fixed>(std::vector<Score>{})), UsageError);
  EXPECT_THROW(c.add("total", 1.0, std::make_unique<Fixed>(std::vector<Score>{})), UsageError);
  EXPECT_THROW(c.add("null_fraction", 1.0, std::make_unique<Fixed>(std::vector<Score>{})), UsageError);
}

TEST(Composite, StateRoundTripByTermName) {
  Composite a;
  auto* stateful = new Fixed({});
  stateful->saved = {{"count", 3}};
  a.add("rm", 1.0, std::unique_ptr<Reward>(stateful));
  a.add("rule", 1.0, std::make_unique<Fixed>(std::vector<Score>{}));
  Json s = a.state();
  EXPECT_EQ(s, Json({{"rm", {{"count", 3}}}}));  // stateless terms are left out
  Composite b;
  auto* target = new Fixed({});
  b.add("rm", 1.0, std::unique_ptr<Reward>(target));
  b.restore(s);
  EXPECT_EQ(target->saved["count"], 3);
  Composite other;
  other.add("else", 1.0, std::make_unique<Fixed>(std::vector<Score>{}));
  EXPECT_THROW(other.restore(s), Error);
}

// The `reward:` section inside a top-level config, as commands will hold it.
struct Top {
  RewardConfig reward;
  template <class V>
  void visit(V& v) {
    v.section("reward", reward);
  }
};

Top bind_top(const std::string& json) {
  config::Sources sources;
  sources.fallback = "grpo.yaml";
  return config::bind<Top>(Json::parse(json), sources);
}

std::string usage_error(const std::string& json, const ModelFactory& model = {}) {
  try {
    Top t = bind_top(json);
    build(t.reward, model);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_error(const std::string& json, const std::vector<std::string>& parts) {
  std::string e = usage_error(json);
  for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "want '" << p << "' in: " << e;
}

TEST(RewardConfig, BindsTheDocumentedYamlShape) {
  Top t = bind_top(R"({"reward": {"terms": [
      {"name": "correct", "kind": "answer_match", "weight": 1.0, "extract": "last_number"},
      {"kind": "format", "pattern": "^\\d+$", "weight": 0.1},
      {"kind": "overlong", "max_length": 64, "buffer": 16, "weight": 0.5},
      {"kind": "program", "command": "python3 judge.py", "timeout_s": 30}]}})");
  const auto& terms = t.reward.terms;
  ASSERT_EQ(terms.size(), 4u);
  EXPECT_EQ(terms[0].term_name(), "correct");
  EXPECT_EQ(terms[0].answer_match.extract, "last_number");
  EXPECT_EQ(terms[0].answer_match.compare, "auto");  // default
  EXPECT_EQ(terms[1].term_name(), "format");
  EXPECT_EQ(terms[1].format.pattern, "^\\d+$");
  EXPECT_DOUBLE_EQ(terms[1].weight, 0.1);
  EXPECT_EQ(terms[2].overlong.buffer, 16);
  EXPECT_EQ(terms[3].program.command, "python3 judge.py");
  EXPECT_DOUBLE_EQ(terms[3].program.timeout_s, 30.0);
  EXPECT_DOUBLE_EQ(terms[3].weight, 1.0);
  // Written back, each term shows only its own kind's options.
  Json back = config::to_json(t.reward);
  EXPECT_TRUE(back["terms"][0].contains("extract"));
  EXPECT_FALSE(back["terms"][0].contains("pattern"));
  EXPECT_TRUE(back["terms"][1].contains("full_match"));
  EXPECT_FALSE(back["terms"][1].contains("command"));
  EXPECT_EQ(back["terms"][3]["command"], "python3 judge.py");
  // And it binds again to the same thing.
  Top again = bind_top(Json({{"reward", back}}).dump());
  EXPECT_EQ(config::to_json(again.reward), back);
}

TEST(RewardConfig, ErrorsNameTheKey) {
  expect_error(R"({"reward": {"terms": [{"kind": "exact_match"}]}})",
               {"reward.terms[0].kind", "must be one of", "answer_match", "exact_match"});
  expect_error(R"({"reward": {"terms": [{"weight": 1}]}})", {"reward.terms[0].kind", "must be one of"});
  // Another kind's option is an unknown key of this one.
  expect_error(R"({"reward": {"terms": [{"kind": "answer_match", "pattern": "x"}]}})",
               {"unknown key 'reward.terms[0].pattern'", "grpo.yaml"});
  expect_error(R"({"reward": {"terms": [{"kind": "answer_match", "extrct": "boxed"}]}})",
               {"reward.terms[0].extrct", "did you mean 'reward.terms[0].extract'"});
  expect_error(R"({"reward": {"terms": [{"kind": "answer_match", "extract": "first"}]}})",
               {"reward.terms[0].extract", "must be one of"});
  expect_error(R"({"reward": {"terms": [{"kind": "format", "pattern": "(a"}]}})",
               {"reward.terms[0].pattern", "not a valid regular expression"});
  expect_error(R"({"reward": {"terms": [{"kind": "format"}]}})", {"reward.terms[0].pattern", "must be set"});
  expect_error(R"({"reward": {"terms": [{"kind": "length"}]}})", {"reward.terms[0].max", "must be > 0"});
  expect_error(R"({"reward": {"terms": [{"kind": "overlong", "max_length": 8, "buffer": 9}]}})",
               {"reward.terms[0].buffer", "max_length = 8"});
  expect_error(R"({"reward": {"terms": [{"kind": "repetition", "n": 0}]}})", {"reward.terms[0].n"});
  expect_error(R"({"reward": {"terms": [{"kind": "program"}]}})", {"reward.terms[0].command", "must be set"});
  expect_error(R"({"reward": {"terms": [{"kind": "program", "command": "x", "timeout_s": 0}]}})",
               {"reward.terms[0].timeout_s", "must be > 0"});
  expect_error(R"({"reward": {"terms": [{"kind": "model"}]}})", {"reward.terms[0].path", "must be set"});
  expect_error(R"({"reward": {"terms": [{"kind": "answer_match", "weight": "high"}]}})",
               {"reward.terms[0].weight", "expects a number"});
  expect_error(R"({"reward": {"terms": {"kind": "format"}}})", {"reward.terms must be a list"});
  // Factory-level checks.
  expect_error(R"({"reward": {}})", {"reward has no terms", "reward.terms", "reward.command"});
  expect_error(R"({"reward": {"terms": [{"kind": "truncation"}, {"kind": "truncation"}]}})",
               {"reward.terms[1].name", "'truncation'", "reward.terms[0]"});
  expect_error(R"({"reward": {"terms": [{"kind": "truncation", "name": "total"}]}})",
               {"reward.terms[0].name", "reserved"});
  expect_error(R"({"reward": {"terms": [{"kind": "model", "path": "rm"}]}})",
               {"reward.terms[0].kind", "model needs LibTorch"});
}

TEST(RewardConfig, FactoryBuildsWorkingTerms) {
  Top t = bind_top(R"({"reward": {"terms": [
      {"name": "correct", "kind": "answer_match"},
      {"kind": "format", "pattern": "^\\d+$", "weight": 0.1},
      {"kind": "length", "max": 4, "weight": 0.5},
      {"kind": "model", "name": "rm", "path": "some/dir", "normalize": "fixed", "mean": 1, "std": 2, "weight": 2}]}})");
  std::string seen_key;
  ModelOptions seen;
  ModelFactory factory = [&](const ModelOptions& o, const std::string& key) -> std::unique_ptr<Reward> {
    seen = o;
    seen_key = key;
    return std::make_unique<Fixed>(std::vector<Score>{0.25, 0.25});
  };
  Composite c = build(t.reward, factory);
  EXPECT_EQ(seen_key, "reward.terms[3]");
  EXPECT_EQ(seen.path, "some/dir");
  EXPECT_EQ(seen.normalize, "fixed");
  EXPECT_DOUBLE_EQ(seen.std, 2.0);
  std::vector<Sample> batch(2);
  batch[0].completion = "42";
  batch[0].reference = "42";
  batch[0].completion_tokens = 6;
  batch[1].completion = "it is 41";
  batch[1].reference = "42";
  batch[1].completion_tokens = 2;
  Scores s = c.score_terms(batch);
  // 1 + 0.1 * 1 + 0.5 * -(6 - 4) / 4 + 2 * 0.25
  EXPECT_DOUBLE_EQ(*s.total[0], 1.0 + 0.1 - 0.25 + 0.5);
  EXPECT_DOUBLE_EQ(*s.total[1], 0.0 + 0.0 + 0.0 + 0.5);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"correct", "format", "length", "rm"}));
}

}  // namespace
}  // namespace tune::reward

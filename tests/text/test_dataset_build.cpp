// Loading, held-out split, weighted mixing, truncation and curriculum ordering.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "tune/core/error.h"
#include "tune/text/dataset.h"
#include "tune/text/tiny_tokenizer.h"

namespace tune::text {
namespace {

const std::filesystem::path kData = std::filesystem::path(TUNE_SOURCE_DIR) / "tests/data/datasets";

std::unique_ptr<Tokenizer> tiny_tokenizer() {
  auto t = Tokenizer::from_json(tiny_tokenizer_json(), "tiny");
  t->apply_config(tiny_tokenizer_config_json(), Json());
  return t;
}
RenderFn tiny_render(const Tokenizer& tok) {
  return make_renderer(ChatTemplate::parse(tiny_tokenizer_config_json()["chat_template"].get<std::string>(), "tiny"), tok);
}

std::vector<Sample> numbered(const std::string& tag, int n) {
  std::vector<Sample> out;
  for (int i = 0; i < n; ++i) {
    Sample s;
    s.kind = SampleKind::text;
    s.text = tag + std::to_string(i);
    out.push_back(s);
  }
  return out;
}

TEST(DatasetBuild, PermutationIsSeededAndComplete) {
  auto a = seeded_permutation(100, 5), b = seeded_permutation(100, 5), c = seeded_permutation(100, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<size_t> all(a.begin(), a.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(*all.rbegin(), 99u);
  // Every position is roughly uniform: over 2000 seeds, element 0 lands in each of 4 quarters ~500 times.
  std::map<size_t, int> quarter;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    auto p = seeded_permutation(8, seed);
    quarter[static_cast<size_t>(std::find(p.begin(), p.end(), 0) - p.begin()) / 2]++;
  }
  for (auto& [q, n] : quarter) EXPECT_NEAR(n, 500, 100) << q;
}

TEST(DatasetBuild, MixCountsBySizeMultiplierOrByShare) {
  EXPECT_EQ(mix_counts({100, 10}, {1.0, 1.0}, 0), (std::vector<int64_t>{100, 10}));
  EXPECT_EQ(mix_counts({100, 10}, {0.5, 3.0}, 0), (std::vector<int64_t>{50, 30}));
  // 40/30/20/10 of 1000, whatever the sizes.
  EXPECT_EQ(mix_counts({5, 5000, 50, 7}, {4, 3, 2, 1}, 1000), (std::vector<int64_t>{400, 300, 200, 100}));
  // Largest remainder keeps the total exact: 10 split 1:1:1 -> 4,3,3.
  EXPECT_EQ(mix_counts({9, 9, 9}, {1, 1, 1}, 10), (std::vector<int64_t>{4, 3, 3}));
}

TEST(DatasetBuild, MixRepeatsWholePassesAndInterleavesProportionally) {
  std::vector<std::vector<Sample>> parts = {numbered("a", 4), numbered("b", 2)};
  auto mixed = mix_samples(parts, {2, 5}, 11);
  ASSERT_EQ(mixed.size(), 7u);
  std::map<std::string, int> seen;
  std::string pattern;
  for (auto& s : mixed) {
    seen[s.text]++;
    pattern += s.text[0];
  }
  // b: 2 whole passes + 1 random extra; a: a random half.
  EXPECT_EQ(seen["b0"] + seen["b1"], 5);
  EXPECT_GE(std::min(seen["b0"], seen["b1"]), 2);
  int a_count = 0;
  for (int i = 0; i < 4; ++i) a_count += seen["a" + std::to_string(i)];
  EXPECT_EQ(a_count, 2);
  for (int i = 0; i < 4; ++i) EXPECT_LE(seen["a" + std::to_string(i)], 1);
  // Keys: a at 0.25, 0.75; b at 0.1, 0.3, 0.5, 0.7, 0.9.
  EXPECT_EQ(pattern, "babbbab");
  EXPECT_EQ(mix_samples(parts, {2, 5}, 11)[1].text, mixed[1].text);  // deterministic
}

TEST(DatasetBuild, LoadDataSplitsEvalDeterministicallyAndReports) {
  DataConfig cfg;
  cfg.datasets.push_back({.path = (kData / "curriculum.jsonl").string()});
  cfg.datasets.push_back({.path = (kData / "alpaca.jsonl").string(), .weight = 2.0});
  cfg.eval_fraction = 0.25;
  cfg.seed = 3;
  DataSplit a = load_data(cfg);
  DataSplit b = load_data(cfg);
  // curriculum: 4 -> 1 eval, 3 train; alpaca: 3 -> 1 eval, 2 train, doubled by weight 2 -> 4.
  EXPECT_EQ(a.eval.size(), 2u);
  EXPECT_EQ(a.train.size(), 7u);
  EXPECT_EQ(a.report["datasets"][1]["mixed"], 4);
  EXPECT_EQ(a.report["datasets"][0]["eval"], 1);
  ASSERT_EQ(a.eval.size(), b.eval.size());
  for (size_t i = 0; i < a.eval.size(); ++i) EXPECT_EQ(a.eval[i].where, b.eval[i].where);
  // No held-out record is in the training set.
  std::set<std::string> train_where;
  for (auto& s : a.train) train_where.insert(s.where);
  for (auto& s : a.eval) EXPECT_EQ(train_where.count(s.where), 0u) << s.where;
}

TEST(DatasetBuild, EvalSplitFileAndMaxSamples) {
  DataConfig cfg;
  cfg.datasets.push_back({.path = (kData / "curriculum.jsonl").string(), .max_samples = 2});
  cfg.datasets.push_back({.path = (kData / "alpaca.jsonl").string(), .split = "eval"});
  DataSplit d = load_data(cfg);
  EXPECT_EQ(d.train.size(), 2u);
  EXPECT_EQ(d.eval.size(), 3u);
  cfg.eval_path = (kData / "text.jsonl").string();
  EXPECT_EQ(load_data(cfg).eval.size(), 5u);
  DataConfig empty;
  EXPECT_THROW(load_data(empty), UsageError);
}

TEST(DatasetBuild, SkipInvalidIsCountedInTheReport) {
  DataConfig cfg;
  cfg.datasets.push_back({.path = (kData / "broken_field.jsonl").string(), .format = "alpaca"});
  EXPECT_THROW(load_data(cfg), Error);
  cfg.datasets[0].skip_invalid = true;
  DataSplit d = load_data(cfg);
  EXPECT_EQ(d.train.size(), 2u);
  EXPECT_EQ(d.report["datasets"][0]["skipped"], 2);
  cfg.datasets.push_back({.path = (kData / "broken_json.jsonl").string(), .skip_invalid = true});
  d = load_data(cfg);
  EXPECT_EQ(d.report["datasets"][1]["skipped"], 1);
  EXPECT_EQ(d.report["datasets"][1]["records"], 3);
  EXPECT_EQ(d.train.size(), 5u);
}

TEST(DatasetBuild, TruncationPolicies) {
  TokenizedSample s{{1, 2, 3, 4, 5}, {-100, -100, 3, 4, 5}};
  TokenizedSample r = s, l = s;
  EXPECT_TRUE(truncate_sequence(r, 3, "right"));
  EXPECT_EQ(r.input_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.labels, (std::vector<int32_t>{-100, -100, 3}));
  EXPECT_TRUE(truncate_sequence(l, 3, "left"));
  EXPECT_EQ(l.input_ids, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_FALSE(truncate_sequence(s, 5, "right"));
}

TEST(DatasetBuild, TokenizeDropsUntrainableAndOrdersByField) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, tiny_render(*tok));
  DataConfig cfg;
  cfg.datasets.push_back({.path = (kData / "curriculum.jsonl").string()});
  cfg.order = "field:difficulty";
  DataSplit d = load_data(cfg);
  TokenizedDataset t = tokenize_data(d.train, masker, cfg);
  ASSERT_EQ(t.samples.size(), 4u);
  EXPECT_TRUE(t.fixed_order);
  std::vector<std::string> answers;
  for (auto& s : t.samples) {
    std::string shown = show_masked(*tok, s);
    auto b = shown.find("[["), e = shown.find("<|im_end|>]]");
    answers.push_back(shown.substr(b + 2, e - b - 2));
  }
  EXPECT_EQ(answers, (std::vector<std::string>{"a", "a2", "b", "c"}));  // stable: easy, easy too, medium, hard

  cfg.order = "field:nope";
  EXPECT_THROW(tokenize_data(d.train, masker, cfg), Error);

  // Length order, short to long.
  cfg.order = "length";
  TokenizedDataset by_len = tokenize_data(d.train, masker, cfg);
  for (size_t i = 1; i < by_len.samples.size(); ++i)
    EXPECT_LE(by_len.samples[i - 1].input_ids.size(), by_len.samples[i].input_ids.size());

  // A limit inside the prompt: right truncation leaves no label -> dropped; left keeps the answer.
  cfg.order = "random";
  cfg.max_seq_len = 6;
  TokenizedDataset right = tokenize_data(d.train, masker, cfg);
  EXPECT_EQ(right.samples.size(), 0u);
  EXPECT_EQ(right.dropped_no_labels, 4);
  cfg.truncation = "left";
  TokenizedDataset left = tokenize_data(d.train, masker, cfg);
  EXPECT_EQ(left.samples.size(), 4u);
  EXPECT_EQ(left.truncated, 4);
  for (auto& s : left.samples) EXPECT_EQ(s.input_ids.size(), 6u);
  cfg.truncation = "drop";
  TokenizedDataset dropped = tokenize_data(d.train, masker, cfg);
  EXPECT_EQ(dropped.dropped_too_long, 4);
}

TEST(DatasetBuild, PreferenceAndPromptDatasets) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, tiny_render(*tok));
  DataConfig cfg;
  cfg.datasets.push_back({.path = (kData / "preference.jsonl").string()});
  TokenizedDataset t = tokenize_data(load_data(cfg).train, masker, cfg);
  EXPECT_EQ(t.pairs.size(), 3u);
  EXPECT_TRUE(t.samples.empty());
  cfg.datasets[0].path = (kData / "rl_prompts.jsonl").string();
  TokenizedDataset p = tokenize_data(load_data(cfg).train, masker, cfg);
  ASSERT_EQ(p.samples.size(), 3u);
  EXPECT_EQ(*p.references[0], "42");
  EXPECT_EQ(p.samples[0].num_labels(), 0);
  // Mixing pairs with SFT samples is refused.
  cfg.datasets.push_back({.path = (kData / "alpaca.jsonl").string()});
  cfg.datasets[0].path = (kData / "preference.jsonl").string();
  EXPECT_THROW(tokenize_data(load_data(cfg).train, masker, cfg), Error);
}

TEST(DatasetBuild, ConfigBindsAndChecksOrder) {
  Json tree = Json::parse(R"({"datasets": [{"path": "a.jsonl", "field_map": {"output": "answer"}}],
                              "order": "field:difficulty", "packing": true})");
  DataConfig cfg = config::bind<DataConfig>(tree, config::Sources{});
  EXPECT_EQ(cfg.datasets[0].field_map["output"], "answer");
  EXPECT_TRUE(cfg.packing);
  EXPECT_THROW(config::bind<DataConfig>(Json::parse(R"({"order": "hardness"})"), config::Sources{}), UsageError);
  EXPECT_THROW(config::bind<DataConfig>(Json::parse(R"({"mask": "assistants"})"), config::Sources{}), UsageError);
  EXPECT_EQ(config::to_json(cfg)["datasets"][0]["format"], "auto");
}

}  // namespace
}  // namespace tune::text

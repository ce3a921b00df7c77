// The reward-model term on a tiny random RM (tiny preset + the built-in tiny tokenizer, a random
// score head, saved in `tune rm`'s full layout): it re-encodes text with its own template (or a
// configured one, or the sample's conversation), scores batches like single unpadded rows, keeps
// the last max_seq_len tokens, normalises (stats, fixed, running with resumable state, auto), and
// plugs into the composite through the config.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "tune/algo/model_reward.h"
#include "tune/algo/reward_head.h"
#include "tune/core/error.h"
#include "tune/data/collate.h"
#include "tune/lora/config.h"
#include "tune/model/causal_lm.h"
#include "tune/model/config.h"
#include "tune/model/weights.h"
#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"

namespace tune::algo {
namespace {

namespace stdfs = std::filesystem;

class ModelRewardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new stdfs::path(stdfs::temp_directory_path() / ("tune_test_model_reward_" + std::to_string(::getpid())));
    stdfs::remove_all(*dir_);
    auto staging = *dir_ / "staging";
    stdfs::create_directories(staging);
    write_json_file(staging / "tokenizer.json", text::tiny_tokenizer_json());
    write_json_file(staging / "tokenizer_config.json", text::tiny_tokenizer_config_json());
    auto tok = text::Tokenizer::load(staging);
    auto config = model::preset_config("tiny", tok->vocab_size());
    auto m = std::make_shared<model::CausalLM>(config);
    model::init_random(*m, 11);
    model::SaveOptions save;
    save.copy_files_from = staging;
    model::save_pretrained(*m, *dir_ / "base", save);
    m->eval();
    // A head much larger than N(0, 0.02), so rewards differ visibly between texts.
    torch::Tensor score = init_score_head(*m, 5, torch::kCPU).detach() * 50.0;
    const int32_t pad = *tok->special().pad;
    save_reward_model(*m, {}, lora::LoraConfig{}, score, {*dir_ / "base", pad, {{"mean", 0.25}, {"std", 2.0}}},
                      *dir_ / "rm");
    save_reward_model(*m, {}, lora::LoraConfig{}, score, {*dir_ / "base", pad, Json::object()}, *dir_ / "rm_nostats");
  }
  static void TearDownTestSuite() {
    stdfs::remove_all(*dir_);
    delete dir_;
  }

  static reward::ModelOptions options(const std::string& normalize = "none", const std::string& which = "rm") {
    reward::ModelOptions o;
    o.path = (*dir_ / which).string();
    o.normalize = normalize;
    o.device = "cpu";
    o.dtype = "float32";
    return o;
  }

  static stdfs::path* dir_;
};
stdfs::path* ModelRewardTest::dir_ = nullptr;

reward::Sample sample(std::string prompt, std::string completion) {
  reward::Sample s;
  s.prompt = std::move(prompt);
  s.completion = std::move(completion);
  return s;
}

std::vector<reward::Sample> mixed_batch() {
  return {sample("What is 2+3?", "5"), sample("Add 12 and 30, then say the answer in a full sentence.", "The answer is 42."),
          sample("hi", ""), sample("Name a colour.", "blue"), sample("Reverse 123.", "321, because reversing digits")};
}

TEST_F(ModelRewardTest, EncodesWithItsOwnTemplateAndScoresLikeOneUnpaddedRow) {
  auto o = options();
  o.batch_size = 2;  // 5 samples: chunks of 2, 2, 1 with padding inside
  ModelReward rm(o);
  auto tok = text::Tokenizer::load(*dir_ / "rm");
  auto rows = mixed_batch();
  auto loaded = load_reward_model(*dir_ / "rm", torch::kFloat32, torch::kCPU);
  std::vector<double> raw = rm.raw_scores(rows);
  ASSERT_EQ(raw.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    // ChatML by hand: the prompt with the generation prompt, then the answer and its end of turn.
    std::vector<int32_t> want = tok->encode("<|im_start|>user\n" + rows[i].prompt + "<|im_end|>\n<|im_start|>assistant\n");
    auto rest = tok->encode(rows[i].completion + "<|im_end|>\n");
    want.insert(want.end(), rest.begin(), rest.end());
    ASSERT_EQ(rm.encode(rows[i]), want) << "sample " << i;
    text::TokenizedSample one;
    one.input_ids = want;
    one.labels.assign(want.size(), text::kIgnoreIndex);
    torch::NoGradGuard ng;
    auto b = data::collate({&one}, {});
    double expected = sequence_rewards(*loaded.model, loaded.score, b)[0].item<double>();
    EXPECT_NEAR(raw[i], expected, 1e-5) << "sample " << i;
  }
  // Distinct texts, distinct rewards (the test would pass trivially on a constant head).
  EXPECT_GT(std::fabs(raw[0] - raw[1]), 1e-3);
  o.batch_size = 16;
  ModelReward whole(o);
  auto raw16 = whole.raw_scores(rows);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_NEAR(raw16[i], raw[i], 1e-5);
  EXPECT_TRUE(rm.raw_scores({}).empty());
}

TEST_F(ModelRewardTest, ConfiguredTemplateAndTheSampleConversation) {
  auto tok = text::Tokenizer::load(*dir_ / "rm");
  auto s = sample("Name a colour.", "blue");
  auto o = options();
  o.chat_template = "llama3";
  ModelReward llama(o);
  ModelReward own(options());
  const std::string as_llama = tok->decode(llama.encode(s));
  const std::string as_own = tok->decode(own.encode(s));
  EXPECT_NE(as_llama.find("<|start_header_id|>user<|end_header_id|>"), std::string::npos) << as_llama;
  EXPECT_NE(as_llama.find("Name a colour."), std::string::npos);
  EXPECT_EQ(as_own.find("<|start_header_id|>"), std::string::npos) << as_own;
  EXPECT_NE(llama.raw_scores({&s, 1})[0], own.raw_scores({&s, 1})[0]);

  // The conversation wins over the prompt text.
  s.messages = Json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Say hi."}}});
  EXPECT_EQ(tok->decode(own.encode(s)),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nblue<|im_end|>\n");
  s.messages = Json::array({{{"role", "user"}}});
  EXPECT_THROW(own.encode(s), Error);

  o.chat_template = "no-such-template";
  EXPECT_THROW(ModelReward{o}, UsageError);
}

TEST_F(ModelRewardTest, KeepsTheLastMaxSeqLenTokens) {
  auto s = sample("a long prompt with many words in it", "and a completion");
  auto full = ModelReward(options()).encode(s);
  auto o = options();
  o.max_seq_len = 8;
  auto cut = ModelReward(o).encode(s);
  ASSERT_EQ(cut.size(), 8u);
  EXPECT_EQ(cut, std::vector<int32_t>(full.end() - 8, full.end()));
}

TEST_F(ModelRewardTest, NormalisationModes) {
  auto rows = mixed_batch();
  ModelReward none(options("none"));
  const std::vector<double> raw = none.raw_scores(rows);
  auto expect_scores = [&](ModelReward& rm, double mean, double std) {
    auto s = rm.score(rows);
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_NEAR(*s[i], (raw[i] - mean) / std, 1e-9) << i;
  };
  expect_scores(none, 0.0, 1.0);
  ModelReward stats(options("stats"));
  expect_scores(stats, 0.25, 2.0);  // reward_stats.json
  ModelReward automatic(options("auto"));
  expect_scores(automatic, 0.25, 2.0);
  auto f = options("fixed");
  f.mean = 1.0;
  f.std = 4.0;
  ModelReward fixed_stats(f);
  expect_scores(fixed_stats, 1.0, 4.0);

  // auto without statistics: running. The first batch is normalised by its own mean / std.
  ModelReward running(options("auto", "rm_nostats"));
  EXPECT_EQ(running.normalizer().mode(), reward::Normalizer::Mode::running);
  auto first = running.score(rows);
  double mean = 0, sq = 0;
  for (auto& v : first) mean += *v / 5.0;
  for (auto& v : first) sq += (*v - mean) * (*v - mean) / 5.0;
  EXPECT_NEAR(mean, 0.0, 1e-9);
  EXPECT_NEAR(std::sqrt(sq), 1.0, 1e-9);
  // The second batch: the statistics of all 10 scores so far.
  Json saved = running.state();
  EXPECT_EQ(saved["count"], 5);
  std::vector<reward::Sample> second(rows.begin(), rows.begin() + 2);
  second.push_back(sample("Another one?", "yes"));
  auto raw2 = none.raw_scores(second);
  std::vector<double> all = raw;
  all.insert(all.end(), raw2.begin(), raw2.end());
  double m = 0, v = 0;
  for (double x : all) m += x / static_cast<double>(all.size());
  for (double x : all) v += (x - m) * (x - m) / static_cast<double>(all.size());
  auto next = running.score(second);
  for (size_t i = 0; i < second.size(); ++i) EXPECT_NEAR(*next[i], (raw2[i] - m) / std::sqrt(v), 1e-9);
  // A resumed run restores the statistics and continues identically.
  ModelReward resumed(options("running", "rm_nostats"));
  resumed.restore(saved);
  auto again = resumed.score(second);
  for (size_t i = 0; i < second.size(); ++i) EXPECT_DOUBLE_EQ(*again[i], *next[i]);

  try {
    ModelReward bad(options("stats", "rm_nostats"), "reward.terms[2]");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("reward.terms[2].normalize is stats"), std::string::npos) << e.what();
  }
  auto missing = options();
  missing.path = (*dir_ / "nowhere").string();
  EXPECT_THROW(ModelReward{missing}, UsageError);
}

TEST_F(ModelRewardTest, ConfigBuildsItIntoTheComposite) {
  reward::RewardConfig cfg;
  reward::TermConfig correct;
  correct.kind = "answer_match";
  correct.name = "correct";
  reward::TermConfig model;
  model.kind = "model";
  model.name = "preference";
  model.weight = 0.5;
  model.model = options("fixed");
  model.model.mean = 0.0;
  model.model.std = 1.0;
  cfg.terms = {correct, model};
  reward::Composite c = build_reward(cfg);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"correct", "preference"}));
  auto rows = mixed_batch();
  rows[0].reference = "5";
  auto raw = ModelReward(options()).raw_scores(rows);
  auto s = c.score_terms(rows);
  EXPECT_NEAR(*s.total[0], 1.0 + 0.5 * raw[0], 1e-9);
  EXPECT_FALSE(s.total[1]);  // no reference: answer_match cannot judge, so the sample is null
  EXPECT_NEAR(*s.terms[1].values[1], raw[1], 1e-9);  // the RM's own value is still reported
  EXPECT_DOUBLE_EQ(s.metrics()["reward/null_fraction"].get<double>(), 0.8);
}

}  // namespace
}  // namespace tune::algo

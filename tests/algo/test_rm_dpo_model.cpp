// Reward head and DPO log-probs on a tiny random decoder: pooling at the last real token, padding
// invariance, Bradley-Terry by hand, save/load round trips of both layouts, and the DPO reference
// (adapters off == the model before LoRA).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "tune/algo/logprobs.h"
#include "tune/algo/reward_head.h"
#include "tune/algo/rm.h"
#include "tune/algo/rm_dpo_data.h"
#include "tune/data/collate.h"
#include "tune/core/str.h"
#include "tune/lora/inject.h"
#include "tune/model/linear.h"
#include "tune/model/weights.h"

namespace {

using namespace tune;

model::ModelConfig tiny_config(bool tied) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  return c;
}

std::shared_ptr<model::CausalLM> tiny_model(bool tied = false, uint64_t seed = 1) {
  auto m = std::make_shared<model::CausalLM>(tiny_config(tied));
  model::init_random(*m, seed);
  m->eval();
  return m;
}

text::TokenizedSample seq(std::vector<int32_t> ids, int64_t prompt) {
  text::TokenizedSample s;
  s.input_ids = ids;
  for (size_t i = 0; i < ids.size(); ++i) s.labels.push_back(static_cast<int64_t>(i) < prompt ? text::kIgnoreIndex : ids[i]);
  return s;
}

std::vector<text::TokenizedPair> pairs() {
  std::vector<text::TokenizedPair> p(2);
  p[0].chosen = seq({3, 14, 15, 9, 26}, 3);
  p[0].rejected = seq({3, 14, 15, 8}, 3);
  p[1].chosen = seq({5, 7, 9, 11, 13, 17, 19}, 2);
  p[1].rejected = seq({5, 7, 2}, 2);
  return p;
}

std::filesystem::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("tune_test_rm_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

TEST(RewardHead, LastTokenIndex) {
  auto mask = torch::tensor({1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, torch::kInt64).view({3, 5});
  auto idx = algo::last_token_index(mask);
  EXPECT_EQ(idx[0].item<int64_t>(), 2);
  EXPECT_EQ(idx[1].item<int64_t>(), 4);
  EXPECT_EQ(idx[2].item<int64_t>(), 0);
}

TEST(RewardHead, RewardIsHiddenAtLastRealTokenAndIgnoresPadding) {
  auto m = tiny_model();
  torch::NoGradGuard ng;
  auto score = algo::init_score_head(*m, 7, torch::kCPU);
  auto p = pairs();
  auto batch = algo::pair_batch(p, 0, p.size(), 0);  // [4, 7], right-padded
  auto rewards = algo::sequence_rewards(*m, score, batch.batch);
  ASSERT_EQ(rewards.size(0), 4);
  std::vector<const text::TokenizedSample*> rows = {&p[0].chosen, &p[1].chosen, &p[0].rejected, &p[1].rejected};
  for (size_t i = 0; i < rows.size(); ++i) {
    auto ids = torch::tensor(std::vector<int64_t>(rows[i]->input_ids.begin(), rows[i]->input_ids.end())).view({1, -1});
    model::ForwardArgs args;
    args.input_ids = ids;
    auto h = m->forward_hidden(args);  // [1, T, D], unpadded
    double expected = torch::matmul(h[0][ids.size(1) - 1], score[0]).item<double>();
    EXPECT_NEAR(rewards[static_cast<int64_t>(i)].item<double>(), expected, 1e-5) << "row " << i;
  }
}

TEST(RewardModel, BradleyTerryHandWorked) {
  auto c = torch::tensor({1.0, 2.0}, torch::kFloat64), r = torch::tensor({0.0, 2.0}, torch::kFloat64);
  auto none = torch::zeros({2}, torch::kFloat64);
  auto l = algo::bradley_terry_loss(c, r, none, 0.0);
  EXPECT_NEAR(l[0].item<double>(), std::log1p(std::exp(-1.0)), 1e-12);  // 0.3133
  EXPECT_NEAR(l[1].item<double>(), std::log(2.0), 1e-12);
  auto margin = torch::tensor({0.5, 0.0}, torch::kFloat64);
  EXPECT_NEAR(algo::bradley_terry_loss(c, r, margin, 0.0)[0].item<double>(), std::log1p(std::exp(-0.5)), 1e-12);
  // Centring: + 0.1 * (r_c + r_r)^2 = 0.1 * 1 and 0.1 * 16.
  auto centred = algo::bradley_terry_loss(c, r, none, 0.1);
  EXPECT_NEAR(centred[0].item<double>(), std::log1p(std::exp(-1.0)) + 0.1, 1e-12);
  EXPECT_NEAR(centred[1].item<double>(), std::log(2.0) + 1.6, 1e-12);
}

void expect_round_trip(bool use_lora, bool tied) {
  auto dir = temp_dir(str(use_lora ? "lora" : "full", tied ? "_tied" : ""));
  auto base_dir = dir / "base";
  auto m = tiny_model(tied, 2);
  model::save_pretrained(*m, base_dir);
  m = model::load_pretrained(base_dir);
  lora::LoraConfig lc;
  lc.r = 4;
  lora::LoraSet set;
  if (use_lora) {
    set = lora::inject_lora(*m, lc);
    torch::NoGradGuard ng;
    for (auto& t : set.parameters()) t.normal_(0, 0.1);  // B non-zero: the adapter matters
  }
  m->eval();
  auto score = algo::init_score_head(*m, 3, torch::kCPU);
  auto p = pairs();
  auto batch = algo::pair_batch(p, 0, p.size(), 0);
  torch::Tensor before;
  {
    torch::NoGradGuard ng;
    before = algo::sequence_rewards(*m, score, batch.batch);
  }
  algo::RewardModelFiles files{base_dir, 0, {{"mean", 0.5}, {"std", 2.0}}};
  algo::save_reward_model(*m, set, lc, score, files, dir / "rm");
  auto loaded = algo::load_reward_model(dir / "rm", torch::kFloat32, torch::kCPU);
  EXPECT_EQ(loaded.lora.empty(), !use_lora);
  EXPECT_DOUBLE_EQ(loaded.stats["std"].get<double>(), 2.0);
  EXPECT_EQ(loaded.stats["layout"].get<std::string>(), use_lora ? "lora" : "full");
  torch::NoGradGuard ng;
  auto after = algo::sequence_rewards(*loaded.model, loaded.score, batch.batch);
  EXPECT_TRUE(torch::allclose(before, after, 1e-5, 1e-6)) << before << after;
  std::filesystem::remove_all(dir);
}

TEST(RewardModel, FullLayoutRoundTrip) { expect_round_trip(false, false); }
TEST(RewardModel, FullLayoutRoundTripTied) { expect_round_trip(false, true); }
TEST(RewardModel, LoraLayoutRoundTrip) { expect_round_trip(true, false); }

TEST(RewardModel, ClassNames) {
  auto c = tiny_config(false);
  EXPECT_EQ(algo::sequence_classification_class(c), "LlamaForSequenceClassification");
  c.arch = model::Arch::qwen2;
  EXPECT_EQ(algo::sequence_classification_class(c), "Qwen2ForSequenceClassification");
}

TEST(DpoLogps, SumsOfCompletionTokenLogprobs) {
  auto m = tiny_model();
  torch::NoGradGuard ng;
  auto p = pairs();
  auto batch = algo::pair_batch(p, 0, p.size(), 0);
  auto lp = algo::sequence_logps(*m, batch);
  std::vector<const text::TokenizedSample*> rows = {&p[0].chosen, &p[1].chosen, &p[0].rejected, &p[1].rejected};
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& s = *rows[i];
    auto ids = torch::tensor(std::vector<int64_t>(s.input_ids.begin(), s.input_ids.end())).view({1, -1});
    auto logp = torch::log_softmax(m->forward(ids)[0], -1);  // [T, V]
    double sum = 0;
    int n = 0;
    for (size_t t = 1; t < s.input_ids.size(); ++t)
      if (s.labels[t] != text::kIgnoreIndex) {
        sum += logp[static_cast<int64_t>(t - 1)][s.input_ids[t]].item<double>();
        ++n;
      }
    const torch::Tensor& got = i < 2 ? lp.chosen : lp.rejected;
    const torch::Tensor& tokens = i < 2 ? lp.chosen_tokens : lp.rejected_tokens;
    EXPECT_NEAR(got[static_cast<int64_t>(i % 2)].item<double>(), sum, 1e-4) << "row " << i;
    EXPECT_EQ(tokens[static_cast<int64_t>(i % 2)].item<double>(), n);
  }
}

TEST(DpoReference, AdaptersOffIsTheModelBeforeLora) {
  auto m = tiny_model();
  auto p = pairs();
  auto batch = algo::pair_batch(p, 0, p.size(), 0);
  torch::NoGradGuard ng;
  auto base = algo::sequence_logps(*m, batch);
  lora::LoraConfig lc;
  lc.r = 4;
  auto set = lora::inject_lora(*m, lc);
  for (auto& t : set.parameters()) t.normal_(0, 0.2);
  auto adapted = algo::sequence_logps(*m, batch);
  EXPECT_FALSE(torch::allclose(adapted.chosen, base.chosen, 1e-4, 1e-4));
  model::AdaptersDisabled off;
  auto ref = algo::sequence_logps(*m, batch);
  EXPECT_TRUE(torch::allclose(ref.chosen, base.chosen, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(ref.rejected, base.rejected, 1e-6, 1e-6));
}

// label_logprobs keeps the logits when they fit its budget and takes the hidden-state form above
// it: both give the direct log-softmax values, and the same gradients.
TEST(LabelLogprobs, KeptLogitsAndHiddenFormAgreeWithDirectLogSoftmax) {
  for (bool tied : {false, true}) {
    auto m = tiny_model(tied, 3);
    std::vector<text::TokenizedSample> samples = {seq({3, 14, 15, 9, 26, 5}, 2), seq({7, 1, 60, 2}, 1)};
    std::vector<const text::TokenizedSample*> ptrs = {&samples[0], &samples[1]};
    data::Batch batch = data::collate(ptrs, {.pad_id = 0});
    auto run = [&](int64_t budget) {
      for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
      torch::Tensor logp = algo::label_logprobs(*m, batch, 1.0, budget);  // [B, T]
      logp.sum().backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : m->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
      return std::make_pair(logp.detach(), grads);
    };
    auto [kept, kept_grads] = run(int64_t{1} << 40);
    auto [hidden, hidden_grads] = run(0);

    torch::NoGradGuard no_grad;
    model::ForwardArgs args;
    args.input_ids = batch.input_ids;
    args.position_ids = batch.position_ids;
    torch::Tensor logits = m->forward(args);  // [B, T, V]
    torch::Tensor ls = torch::log_softmax(logits.to(torch::kFloat64), -1);
    const int64_t T = batch.input_ids.size(1);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 1; t < T; ++t) {
        const int64_t label = batch.labels[b][t].item<int64_t>();
        const double expected = label == text::kIgnoreIndex ? 0.0 : ls[b][t - 1][label].item<double>();
        EXPECT_NEAR(kept[b][t].item<double>(), expected, 1e-5) << "kept, tied " << tied;
        EXPECT_NEAR(hidden[b][t].item<double>(), expected, 1e-5) << "hidden, tied " << tied;
      }
    ASSERT_EQ(kept_grads.size(), hidden_grads.size());
    for (size_t i = 0; i < kept_grads.size(); ++i)
      EXPECT_TRUE(torch::allclose(kept_grads[i], hidden_grads[i], 1e-4, 1e-5)) << "parameter " << i << ", tied " << tied;
  }
}

}  // namespace

// The sampler's log-probs equal the trainer's: for every sampled completion token, the log-prob the
// engine returned (decoding with a KV cache, left-padded prompts, shared prefills) and the one the
// loss recomputes from the returned right-padded tensors (algo::completion_logprobs, i.e.
// algo::label_logprobs -> ops::token_logprob at the sampling temperature) agree to
//   <= 1e-5 in float32 on the tiny model, <= 1e-4 on a Qwen-shaped GQA model,
// with and without LoRA (merged and unmerged), mixed prompt lengths and G > 1. This is what makes
// the PPO/GRPO ratio exactly 1 before the first update (TRL #4159 is what breaks without it).
#include <gtest/gtest.h>

#include <iostream>

#include "rollout_test_util.h"
#include "tune/algo/logprobs.h"
#include "tune/core/str.h"
#include "tune/ops/token_logprob.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"

namespace tune::rollout {
namespace {

using namespace testing;

struct Agreement {
  double max_diff = 0;        // engine vs algo::completion_logprobs
  double max_diff_label = 0;  // engine vs ops::token_logprob over the raw forward (an independent gather)
  double logit_scale = 0;     // max |logit| / T over the sequences
  int64_t tokens = 0;
};

// The engine's log-probs against the trainer's pass on its output tensors.
Agreement measure(model::CausalLM& m, const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                  const SamplingConfig& s, EngineOptions options, uint64_t seed) {
  m.train();  // the engine must switch to eval itself (LoRA dropout off) and back
  RolloutEngine engine(m, options);
  auto gen = make_generator(torch::kCPU, seed);
  RolloutBatch r = engine.rollout(prompts, G, s, gen);
  EXPECT_TRUE(m.is_training()) << "train mode not restored";
  m.eval();
  const double T = s.temperature > 0 ? s.temperature : 1.0;
  torch::Tensor trainer = algo::completion_logprobs(m, r, T);  // [N, Tc]
  auto mask = r.completion_token_mask.to(torch::kBool);
  EXPECT_EQ(trainer.sizes(), r.logprobs.sizes());
  Agreement a;
  a.tokens = mask.sum().item<int64_t>();
  a.max_diff = (trainer - r.logprobs).abs().masked_select(mask).max().item<double>();

  // Independently: the full forward's logits at position P_r + j - 1 for completion token j.
  torch::NoGradGuard no_grad;
  auto logits = m.forward(r.input_ids);  // [N, T, V]
  a.logit_scale = logits.abs().max().item<double>() / T;
  std::vector<torch::Tensor> rows, labels;
  std::vector<float> sampler;
  auto lp = r.logprobs.contiguous();
  for (int64_t i = 0; i < r.size(); ++i) {
    const auto& info = r.samples[static_cast<size_t>(i)];
    for (int64_t j = 0; j < info.completion_length; ++j) {
      rows.push_back(logits[i][info.prompt_length + j - 1]);
      labels.push_back(torch::tensor(int64_t{info.tokens[static_cast<size_t>(j)]}));
      sampler.push_back(lp[i][j].item<float>());
    }
  }
  ops::TokenLogprobOptions opts;
  opts.temperature = T;
  auto direct = ops::token_logprob(torch::stack(rows), torch::stack(labels), opts).logprob;
  a.max_diff_label = (direct - torch::tensor(sampler)).abs().max().item<double>();
  // The sampled tokens really are the completion in the sequence tensor.
  for (int64_t i = 0; i < r.size(); ++i) {
    const auto& info = r.samples[static_cast<size_t>(i)];
    auto seq = r.input_ids[i].narrow(0, info.prompt_length, info.completion_length);
    EXPECT_TRUE(seq.equal(torch::tensor(std::vector<int64_t>(info.tokens.begin(), info.tokens.end()))));
  }
  return a;
}

void report(const char* what, const Agreement& a) {
  std::cout << "[agreement] " << what << ": max |diff| " << a.max_diff << " (token_logprob direct " << a.max_diff_label
            << ") over " << a.tokens << " tokens, logit scale " << a.logit_scale << "\n";
  ::testing::Test::RecordProperty(std::string(what) + "_max_diff", std::to_string(a.max_diff));
}

SamplingConfig sampling(double temperature, int64_t max_new) {
  SamplingConfig s;
  s.temperature = temperature;
  s.max_new_tokens = max_new;
  return s;
}

EngineOptions plain_options(int64_t check_every = 4) {
  EngineOptions o;
  o.config.stop_check_interval = check_every;
  return o;
}

TEST(RolloutAgreement, TinyModelFloat32Within1e5) {
  auto m = tiny_preset_model(3);  // `tune init-model --preset tiny`: its shape and init scale
  const int64_t V = m->config().vocab_size;
  auto prompts = random_prompts({5, 17, 1, 11}, V, 7);
  for (double T : {1.0, 0.7}) {
    EngineOptions o = plain_options();
    o.eos_ids = {7, 13};  // some rows end early: mixed completion lengths, dropped rows
    auto a = measure(*m, prompts, 4, sampling(T, 24), o, 11);
    report(("tiny T " + std::to_string(T)).c_str(), a);
    EXPECT_LE(a.max_diff, 1e-5);
    EXPECT_LE(a.max_diff_label, 1e-5);
    EXPECT_GT(a.tokens, 100);
  }
}

TEST(RolloutAgreement, PeakyLogitsStayWithinFloat32RoundingOfTheLogits) {
  // Weights 10x init-model's (logits up to ~|15|). The two passes differ only in summation order
  // (one query over a cache vs the whole sequence at once): in float64 they agree to the final
  // float32 cast of the logits; in float32 to a few ulps of the logit scale.
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto m = tiny_preset_model(3, 0.2, dtype);
    auto prompts = random_prompts({5, 17, 1, 11}, m->config().vocab_size, 7);
    for (double T : {1.0, 0.7}) {
      EngineOptions o = plain_options();
      o.eos_ids = {7, 13};
      auto a = measure(*m, prompts, 4, sampling(T, 24), o, 11);
      report(::tune::str("tiny x10 init ", c10::toString(dtype), " T ", T).c_str(), a);
      if (dtype == torch::kFloat64) EXPECT_LE(a.max_diff, 2e-6);
      else EXPECT_LE(a.max_diff, 4e-6 * a.logit_scale);
    }
  }
}

TEST(RolloutAgreement, QwenShapedModelWithin1e4) {
  auto m = qwen_shaped_model();
  auto prompts = random_prompts({9, 30, 3}, m->config().vocab_size, 8);
  auto a = measure(*m, prompts, 3, sampling(0.9, 20), plain_options(8), 12);
  report("qwen-shaped T 0.9", a);
  EXPECT_LE(a.max_diff, 1e-4);
  EXPECT_LE(a.max_diff_label, 1e-4);
}

TEST(RolloutAgreement, WithLoraUnmergedAndMerged) {
  for (bool qwen : {false, true}) {
    auto m = qwen ? qwen_shaped_model(5) : tiny_preset_model(5);
    auto set = random_lora(*m, 9, /*dropout=*/0.3);  // dropout must be off in the rollout
    auto prompts = random_prompts({4, 13, 8}, m->config().vocab_size, 10);
    const double bound = qwen ? 1e-4 : 1e-5;
    for (bool merge : {false, true}) {
      EngineOptions o = plain_options();
      o.config.merge_lora = merge;
      o.lora = &set;
      auto a = measure(*m, prompts, 4, sampling(1.0, 16), o, 13);
      report((std::string(qwen ? "qwen-shaped" : "tiny") + " LoRA " + (merge ? "merged" : "unmerged")).c_str(), a);
      EXPECT_LE(a.max_diff, bound);
      // Adapters are back in their slots after a merged rollout.
      for (const auto& mod : set.modules()) EXPECT_EQ(mod.linear->adapter(), mod.adapter) << mod.name;
    }
  }
}

TEST(RolloutAgreement, LoraChangesTheLogprobs) {
  // Guards the LoRA cases above: the adapters are not a no-op, so agreement with them means
  // something (and the trainer really evaluates with them).
  auto m = tiny_preset_model(5, 0.2);
  auto prompts = random_prompts({6, 9}, m->config().vocab_size, 10);
  RolloutEngine engine(*m, plain_options());
  auto gen = make_generator(torch::kCPU, 1);
  auto r = engine.rollout(prompts, 2, sampling(1.0, 8), gen);
  auto base = algo::completion_logprobs(*m, r, 1.0).detach();
  auto set = random_lora(*m, 9);
  torch::NoGradGuard no_grad;
  auto adapted = algo::completion_logprobs(*m, r, 1.0);
  EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-2);
}

TEST(RolloutAgreement, TrainerLogprobsAreDifferentiable) {
  auto m = tiny_preset_model(4, 0.2);
  auto set = random_lora(*m, 3);
  RolloutEngine engine(*m, plain_options());
  auto gen = make_generator(torch::kCPU, 2);
  auto r = engine.rollout(random_prompts({5, 7}, m->config().vocab_size, 1), 2, sampling(1.0, 6), gen);
  auto logp = algo::completion_logprobs(*m, r, 1.0);  // [N, Tc]
  ASSERT_TRUE(logp.requires_grad());
  // The ratio's gradient at the sampling point: d/dtheta sum exp(logp - old) = d/dtheta sum logp.
  auto ratio = (logp - r.logprobs).exp() * r.completion_token_mask;
  EXPECT_NEAR(ratio.sum().item<double>(), r.stats.completion_tokens, 1e-3);
  ratio.sum().backward();
  double grad = 0;
  for (const auto& mod : set.modules()) grad += mod.adapter->lora_A().grad().abs().sum().item<double>();
  EXPECT_GT(grad, 0.0);
}

}  // namespace
}  // namespace tune::rollout

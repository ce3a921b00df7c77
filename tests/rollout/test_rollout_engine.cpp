// The rollout engine's behaviour: the output layout, greedy decoding against a full forward,
// EOS lists, stop strings, prompt limits, shared prefills, the caller's RNG stream, stop-check
// intervals, LoRA merging, and the sampling rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "rollout_test_util.h"
#include "tune/core/error.h"
#include "tune/lora/merge.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"

namespace tune::rollout {
namespace {

using namespace testing;

SamplingConfig greedy(int64_t max_new) {
  SamplingConfig s;
  s.temperature = 0;
  s.max_new_tokens = max_new;
  return s;
}

SamplingConfig sampled(int64_t max_new, double T = 1.0) {
  SamplingConfig s;
  s.temperature = T;
  s.max_new_tokens = max_new;
  return s;
}

RolloutBatch run(model::CausalLM& m, const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                 const SamplingConfig& s, EngineOptions o = {}, uint64_t seed = 0) {
  RolloutEngine engine(m, std::move(o));
  auto gen = make_generator(torch::kCPU, seed);
  return engine.rollout(prompts, G, s, gen);
}

std::vector<std::vector<int32_t>> completions(const RolloutBatch& r) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : r.samples) out.push_back(s.tokens);
  return out;
}

TEST(RolloutEngine, GreedyRowsEqualAFullForwardAndEachPromptAlone) {
  auto m = small_model();
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 33, 2, 9, 41, 8}, {60}, {12, 13, 14, 15}};
  auto batched = run(*m, prompts, 1, greedy(10));
  ASSERT_EQ(batched.size(), 3);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& s = batched.samples[i];
    EXPECT_EQ(s.tokens, run(*m, {prompts[i]}, 1, greedy(10)).samples[0].tokens) << "prompt " << i;
    ASSERT_EQ(s.tokens.size(), 10u);
    EXPECT_EQ(s.finish, FinishReason::length);
    EXPECT_TRUE(s.truncated);
    // Oracle: argmax / log_softmax of one full forward over prompt + completion.
    std::vector<int64_t> seq(prompts[i].begin(), prompts[i].end());
    seq.insert(seq.end(), s.tokens.begin(), s.tokens.end());
    torch::NoGradGuard no_grad;
    auto logits = m->forward(torch::tensor(seq, torch::kInt64).unsqueeze(0))[0];  // [L, V]
    const auto P = static_cast<int64_t>(prompts[i].size());
    for (int64_t t = 0; t < 10; ++t) {
      auto row = logits[P - 1 + t];
      EXPECT_EQ(row.argmax().item<int64_t>(), s.tokens[static_cast<size_t>(t)]);
      EXPECT_NEAR(row.log_softmax(-1)[s.tokens[static_cast<size_t>(t)]].item<float>(),
                  batched.logprobs[static_cast<int64_t>(i)][t].item<float>(), 1e-5);
    }
  }
}

TEST(RolloutEngine, OutputIsRightPaddedPromptThenCompletion) {
  auto m = small_model();
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 33}, {60, 61, 62, 63, 64, 65}};
  EngineOptions o;
  o.pad_id = 96;
  auto free_run = run(*m, prompts, 1, greedy(9), o);
  o.eos_ids = {free_run.samples[0].tokens[3]};  // row 0 ends after 4 tokens (or earlier)
  auto r = run(*m, prompts, 2, greedy(9), o);
  ASSERT_EQ(r.size(), 4);
  EXPECT_EQ(r.group_size, 2);
  const int64_t T = r.input_ids.size(1), Tc = r.completion_ids.size(1);
  auto pad_of = [&](const torch::Tensor& row, int64_t from) {
    return row.narrow(0, from, row.size(0) - from).eq(96).all().item<bool>();
  };
  int64_t longest = 0, widest = 0;
  for (int64_t i = 0; i < 4; ++i) {
    const auto& s = r.samples[static_cast<size_t>(i)];
    const auto& p = prompts[static_cast<size_t>(i / 2)];
    EXPECT_EQ(s.prompt_index, i / 2);
    EXPECT_EQ(r.prompt_index[i].item<int64_t>(), i / 2);
    const auto P = static_cast<int64_t>(p.size()), L = s.completion_length;
    EXPECT_EQ(s.prompt_length, P);
    EXPECT_EQ(r.prompt_lengths[i].item<int64_t>(), P);
    EXPECT_EQ(r.completion_lengths[i].item<int64_t>(), L);
    longest = std::max(longest, P + L);
    widest = std::max(widest, L);
    std::vector<int64_t> expect(p.begin(), p.end());
    expect.insert(expect.end(), s.tokens.begin(), s.tokens.end());
    EXPECT_TRUE(r.input_ids[i].narrow(0, 0, P + L).equal(torch::tensor(expect)));
    EXPECT_TRUE(pad_of(r.input_ids[i], P + L));
    EXPECT_EQ(r.attention_mask[i].sum().item<int64_t>(), P + L);
    EXPECT_EQ(r.attention_mask[i].narrow(0, 0, P + L).min().item<int64_t>(), 1);
    EXPECT_EQ(r.completion_mask[i].sum().item<int64_t>(), L);
    EXPECT_EQ(r.completion_mask[i].narrow(0, P, L).min().item<int64_t>(), 1);
    EXPECT_EQ(r.completion_token_mask[i].sum().item<int64_t>(), L);
    EXPECT_TRUE(pad_of(r.completion_ids[i], L));
    EXPECT_EQ(r.logprobs[i].narrow(0, L, Tc - L).abs().sum().item<double>(), 0.0);
    EXPECT_LE(r.logprobs[i].narrow(0, 0, L).max().item<double>(), 0.0);
  }
  EXPECT_EQ(T, longest);
  EXPECT_EQ(Tc, widest);
  // Row 0 stopped on the EOS it produced; its completion keeps it.
  EXPECT_EQ(r.samples[0].finish, FinishReason::eos);
  EXPECT_FALSE(r.samples[0].truncated);
  EXPECT_EQ(r.samples[0].tokens.back(), o.eos_ids[0]);
  EXPECT_FALSE(r.truncated[0].item<bool>());
  // gather_completion maps a token-aligned [N, T] tensor onto the completion columns.
  auto gathered = r.gather_completion(r.input_ids);
  EXPECT_TRUE(gathered.equal(torch::where(r.completion_token_mask.to(torch::kBool), r.completion_ids,
                                          torch::zeros_like(r.completion_ids))));
}

TEST(RolloutEngine, EveryEosIdEndsARowAndTheOthersContinue) {
  auto m = small_model();
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 33}, {60, 61}, {2, 3, 4, 5}};
  auto free_run = run(*m, prompts, 1, greedy(8));
  EngineOptions o;
  o.eos_ids = {free_run.samples[0].tokens[2], free_run.samples[1].tokens[4]};  // a list, not one id
  o.config.stop_check_interval = 3;  // stops land inside a check window
  auto stopped = run(*m, prompts, 1, greedy(8), o);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& free = free_run.samples[i].tokens;
    auto first = std::find_first_of(free.begin(), free.end(), o.eos_ids.begin(), o.eos_ids.end());
    std::vector<int32_t> expect(free.begin(), first == free.end() ? first : first + 1);
    EXPECT_EQ(stopped.samples[i].tokens, expect) << "row " << i;
    EXPECT_EQ(stopped.samples[i].finish, first == free.end() ? FinishReason::length : FinishReason::eos);
  }
  EXPECT_EQ(stopped.samples[0].tokens.size(), 3u);
  EXPECT_LE(stopped.samples[1].tokens.size(), 5u);
}

TEST(RolloutEngine, StopChecksEveryKStepsChangeNothingButTheWork) {
  auto m = small_model(3);
  auto prompts = random_prompts({3, 8, 5, 1}, 97, 4);
  for (bool sample : {false, true}) {
    std::vector<std::vector<std::vector<int32_t>>> outs;
    std::vector<torch::Tensor> logprobs;
    for (int64_t K : {1, 3, 8}) {
      EngineOptions o;
      o.eos_ids = {11, 23, 42};
      o.config.stop_check_interval = K;
      // Sampled: finished rows stay in the batch (share 1), so every step draws the same numbers.
      o.config.drop_finished_share = sample ? 1.0 : 0.0;
      auto r = run(*m, prompts, 3, sample ? sampled(20) : greedy(20), o, 77);
      outs.push_back(completions(r));
      logprobs.push_back(r.logprobs);
      if (K == 1 && !sample) {
        EXPECT_GT(r.stats.rows_dropped, 0);
      }
    }
    EXPECT_EQ(outs[0], outs[1]) << "sample=" << sample;
    EXPECT_EQ(outs[0], outs[2]) << "sample=" << sample;
    if (sample) {
      // The same rows in every step: bit-identical.
      EXPECT_TRUE(logprobs[0].equal(logprobs[1]));
      EXPECT_TRUE(logprobs[0].equal(logprobs[2]));
    } else {
      // Rows left the batch at different steps: other matrix shapes, float32 rounding only.
      EXPECT_LT((logprobs[0] - logprobs[1]).abs().max().item<double>(), 1e-5);
      EXPECT_LT((logprobs[0] - logprobs[2]).abs().max().item<double>(), 1e-5);
    }
    std::set<size_t> lengths;
    for (const auto& c : outs[0]) lengths.insert(c.size());
    EXPECT_GT(lengths.size(), 1u) << "the EOS ids should end some rows early";
  }
}

TEST(RolloutEngine, SharedPrefillEqualsSeparatePrompts) {
  auto m = small_model(2);
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 33, 2}, {60, 7}};
  // G greedy samples of a prompt are its greedy completion, G times.
  auto shared = run(*m, prompts, 3, greedy(7));
  ASSERT_EQ(shared.size(), 6);
  EXPECT_EQ(shared.stats.distinct_prompts, 2);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(shared.samples[static_cast<size_t>(i)].tokens,
              run(*m, {prompts[static_cast<size_t>(i / 3)]}, 1, greedy(7)).samples[0].tokens);
  // Sampled: G rows of one prompt == the prompt given G times (prefilled once too), same stream.
  auto grouped = run(*m, prompts, 3, sampled(7), {}, 5);
  auto repeated = run(*m, {prompts[0], prompts[0], prompts[0], prompts[1], prompts[1], prompts[1]}, 1, sampled(7), {}, 5);
  EXPECT_EQ(repeated.stats.distinct_prompts, 2);
  EXPECT_EQ(completions(grouped), completions(repeated));
  EXPECT_TRUE(grouped.logprobs.equal(repeated.logprobs));
  EXPECT_EQ(repeated.samples[4].prompt_index, 4);
  EXPECT_EQ(grouped.samples[4].prompt_index, 1);
  // The G samples of one prompt differ from one another.
  auto group0 = completions(grouped);
  std::set<std::vector<int32_t>> distinct(group0.begin(), group0.begin() + 3);
  EXPECT_GT(distinct.size(), 1u);
}

TEST(RolloutEngine, CallersGeneratorMakesRolloutsDifferAndReplayExactly) {
  auto m = small_model(4);
  auto prompts = random_prompts({4, 9, 2}, 97, 6);
  RolloutEngine engine(*m, {});
  auto gen = make_generator(torch::kCPU, 1234);
  auto s = sampled(12, 0.8);
  s.top_p = 0.95;
  auto first = engine.rollout(prompts, 4, s, gen);
  torch::Tensor saved = gen.get_state();  // what a checkpoint stores
  auto second = engine.rollout(prompts, 4, s, gen);
  EXPECT_NE(completions(first), completions(second)) << "successive rollouts must differ";
  auto third = engine.rollout(prompts, 4, s, gen);
  gen.set_state(saved);  // resume from the checkpoint
  auto replay = engine.rollout(prompts, 4, s, gen);
  EXPECT_EQ(completions(replay), completions(second));
  EXPECT_TRUE(replay.logprobs.equal(second.logprobs));
  EXPECT_TRUE(replay.input_ids.equal(second.input_ids));
  auto after = engine.rollout(prompts, 4, s, gen);
  EXPECT_EQ(completions(after), completions(third));
  // A fresh generator with the same seed replays the whole stream.
  auto again = make_generator(torch::kCPU, 1234);
  EXPECT_EQ(completions(engine.rollout(prompts, 4, s, again)), completions(first));
}

TEST(RolloutEngine, LongPromptsAreTruncatedFromTheLeftOrSkippedAndCounted) {
  auto m = small_model();
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10}, {11, 12, 13, 14, 15}};
  auto s = greedy(4);
  s.max_prompt_length = 4;
  auto cut = run(*m, prompts, 2, s);
  EXPECT_EQ(cut.stats.prompts_truncated, 2);
  EXPECT_EQ(cut.stats.prompts_skipped, 0);
  ASSERT_EQ(cut.size(), 6);
  EXPECT_TRUE(cut.input_ids[0].narrow(0, 0, 4).equal(torch::tensor({5, 6, 7, 8}, torch::kInt64)));
  EXPECT_TRUE(cut.samples[0].prompt_truncated);
  EXPECT_FALSE(cut.samples[2].prompt_truncated);
  EXPECT_EQ(cut.samples[0].tokens, run(*m, {{5, 6, 7, 8}}, 1, greedy(4)).samples[0].tokens);
  s.long_prompts = "skip";
  auto skip = run(*m, prompts, 2, s);
  EXPECT_EQ(skip.stats.prompts_skipped, 2);
  ASSERT_EQ(skip.size(), 2);
  EXPECT_EQ(skip.samples[0].prompt_index, 1);
  EXPECT_EQ(skip.samples[1].prompt_index, 1);
  s.max_prompt_length = 1;
  auto none = run(*m, {{1, 2}}, 2, s);
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.input_ids.size(0), 0);
  EXPECT_THROW(run(*m, {{}}, 1, greedy(2)), Error);
}

TEST(RolloutEngine, StopStringsEndACompletionAtTheTokenThatCompletesThem) {
  auto tok = tiny_tokenizer();
  auto m = tiny_preset_model(6, 0.2);
  m->eval();
  std::vector<std::vector<int32_t>> prompts = {tok->encode("12+34="), tok->encode("hello there")};
  EngineOptions o;
  o.tokenizer = tok.get();
  o.config.stop_check_interval = 5;
  auto free_run = run(*m, prompts, 1, greedy(24), o);
  const auto& free = free_run.samples[0].tokens;
  // A stop string made of the text of tokens j and j+1 straddling a check (after every 5 tokens),
  // plain text (no special token, which the completion's text skips; whole UTF-8 characters).
  std::string stop;
  for (size_t j = 4; j + 1 < free.size() && stop.empty(); j += 5) {
    if (tok->is_special(free[j]) || tok->is_special(free[j + 1])) continue;
    std::string text = tok->decode(std::vector<int32_t>{free[j], free[j + 1]});
    if (text.find("\xEF\xBF\xBD") == std::string::npos && text.size() >= 2) stop = text;
  }
  ASSERT_FALSE(stop.empty()) << "no plain-text token pair across a check in the free run";
  auto s = greedy(24);
  s.stop_strings = {stop};
  auto r = run(*m, prompts, 1, s, o);
  // Expected: the shortest prefix of the free run whose text holds the stop string.
  size_t end = 1;
  while (tok->decode(std::span<const int32_t>(free.data(), end)).find(stop) == std::string::npos) ++end;
  EXPECT_EQ(r.samples[0].tokens, std::vector<int32_t>(free.begin(), free.begin() + static_cast<int64_t>(end)));
  EXPECT_EQ(r.samples[0].finish, FinishReason::stop_string);
  EXPECT_FALSE(r.samples[0].truncated);
  EXPECT_NE(r.samples[0].text.find(stop), std::string::npos) << "stop '" << stop << "' text '" << r.samples[0].text << "'";
  EXPECT_EQ(r.samples[0].text, tok->decode(r.samples[0].tokens, true));
  // The other row ends where its own text first holds the stop string, or runs to the limit.
  const auto& other = free_run.samples[1].tokens;
  size_t other_end = 1;
  while (other_end <= other.size() &&
         tok->decode(std::span<const int32_t>(other.data(), other_end)).find(stop) == std::string::npos)
    ++other_end;
  EXPECT_EQ(r.samples[1].tokens.size(), std::min(other_end, other.size()));
}

TEST(RolloutEngine, RestoresTrainModeAndTheUnmergedWeightsBitForBit) {
  auto m = tiny_preset_model(2, 0.2);
  auto set = random_lora(*m, 4, 0.1);
  std::vector<torch::Tensor> before;
  for (const auto& p : m->parameters()) before.push_back(p.detach().clone());
  m->train();
  EngineOptions o;
  o.config.merge_lora = true;
  o.lora = &set;
  RolloutEngine engine(*m, o);
  auto gen = make_generator(torch::kCPU, 1);
  auto r = engine.rollout(random_prompts({3, 6}, m->config().vocab_size, 2), 2, sampled(5), gen);
  EXPECT_EQ(r.size(), 4);
  EXPECT_TRUE(m->is_training());
  auto after = m->parameters();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(after[i].equal(before[i])) << i;
  for (const auto& mod : set.modules()) EXPECT_EQ(mod.linear->adapter(), mod.adapter);
  // While merged, the base weight holds W + scale B A and the slot is empty.
  const auto& q = set.modules()[0];
  auto base = q.linear->weight().clone();
  {
    lora::MergedAdapters merged(*m, set);
    EXPECT_EQ(q.linear->adapter(), nullptr);
    EXPECT_TRUE(q.linear->weight().equal(base + q.adapter->delta_weight()));
    EXPECT_GT(q.adapter->delta_weight().abs().max().item<double>(), 0.0);
  }
  EXPECT_EQ(q.linear->adapter(), q.adapter);
  EXPECT_TRUE(q.linear->weight().equal(base));
}

TEST(RolloutSampling, TopKTopPAndRepetitionPenaltyFollowTheirDefinitions) {
  // probs 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps {0, 1}; top_k 3 keeps {0, 1, 2}.
  auto logits = torch::tensor({0.5, 0.3, 0.15, 0.05}).log().unsqueeze(0).repeat({4000, 1});
  auto gen = make_generator(torch::kCPU, 1);
  SamplingConfig s;
  s.temperature = 1.0;
  s.top_p = 0.7;
  auto choice = choose_next(logits, {}, s, gen);
  auto counts = torch::bincount(choice.tokens, {}, 4).to(torch::kDouble) / 4000;
  EXPECT_NEAR(counts[0].item<double>(), 0.5 / 0.8, 0.03);
  EXPECT_NEAR(counts[1].item<double>(), 0.3 / 0.8, 0.03);
  EXPECT_EQ(counts[2].item<double>(), 0);
  EXPECT_EQ(counts[3].item<double>(), 0);
  // The log-probs stay the policy's: log 0.5 and log 0.3, not the renormalised top-p ones.
  auto is0 = choice.tokens.eq(0);
  EXPECT_NEAR(choice.logprobs.masked_select(is0).max().item<double>(), std::log(0.5), 1e-6);
  EXPECT_NEAR(choice.logprobs.masked_select(is0).min().item<double>(), std::log(0.5), 1e-6);
  s.top_p = 1.0;
  s.top_k = 3;
  counts = torch::bincount(choose_next(logits, {}, s, gen).tokens, {}, 4).to(torch::kDouble) / 4000;
  EXPECT_NEAR(counts[2].item<double>(), 0.15 / 0.95, 0.03);
  EXPECT_EQ(counts[3].item<double>(), 0);
  // Temperature: the log-prob is log_softmax(logits / T) of the unmodified logits.
  s.top_k = 0;
  s.temperature = 0.5;
  auto tempered = choose_next(logits.narrow(0, 0, 64), {}, s, gen);
  auto expect = (logits.narrow(0, 0, 64) / 0.5).log_softmax(-1).gather(1, tempered.tokens.unsqueeze(1)).squeeze(1);
  EXPECT_LT((tempered.logprobs - expect).abs().max().item<double>(), 1e-6);
  // Repetition penalty 2 on token 0 (logit log 0.5 < 0 -> doubled) makes greedy pick token 1;
  // its log-prob is still the unpenalised log 0.3.
  s = SamplingConfig();
  s.temperature = 0;
  s.repetition_penalty = 2.0;
  auto seen = torch::tensor({true, false, false, false}).unsqueeze(0);
  auto g = choose_next(logits.narrow(0, 0, 1), seen, s, gen);
  EXPECT_EQ(g.tokens.item<int64_t>(), 1);
  EXPECT_NEAR(g.logprobs.item<double>(), std::log(0.3), 1e-6);
}

TEST(RolloutSampling, DrawsFollowTheProbabilitiesAcrossVocabularyBlocks) {
  // V = 2500: three blocks of the CPU sampler's two-level inverse CDF, the last one padded.
  constexpr int64_t V = 2500, draws = 6000;
  const double inf = std::numeric_limits<double>::infinity();
  // Row A: support {0, 1023, 1024, 2499} (both sides of a block edge and the last token), the rest
  // probability 0; row B: 0.9 on token 1500, the remaining 0.1 spread evenly over the others.
  auto a = torch::full({V}, -inf, torch::kFloat64);
  const std::vector<std::pair<int64_t, double>> support = {{0, 0.1}, {1023, 0.2}, {1024, 0.3}, {2499, 0.4}};
  for (auto [t, p] : support) a[t] = std::log(p);
  auto b = torch::full({V}, std::log(0.1 / (V - 1)), torch::kFloat64);
  b[1500] = std::log(0.9);
  auto logits = torch::cat({a.unsqueeze(0).expand({draws, V}), b.unsqueeze(0).expand({draws, V})}).to(torch::kFloat32);
  auto gen = make_generator(torch::kCPU, 7);
  SamplingConfig s;
  s.temperature = 1.0;
  auto choice = choose_next(logits, {}, s, gen);
  auto ta = choice.tokens.narrow(0, 0, draws), tb = choice.tokens.narrow(0, draws, draws);
  auto count_a = torch::bincount(ta, {}, V).to(torch::kDouble) / draws;
  for (auto [t, p] : support)  // 5 standard deviations of a binomial share
    EXPECT_NEAR(count_a[t].item<double>(), p, 5 * std::sqrt(p * (1 - p) / draws)) << "token " << t;
  EXPECT_EQ(count_a.sum().item<double>(), 1.0);
  double on_support = 0;
  for (auto [t, p] : support) on_support += count_a[t].item<double>();
  EXPECT_DOUBLE_EQ(on_support, 1.0) << "a token of probability 0 was drawn";
  const double share = tb.eq(1500).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(share, 0.9, 5 * std::sqrt(0.9 * 0.1 / draws));
  auto rest = tb.masked_select(tb.ne(1500)).to(torch::kDouble);  // even over the others: mean ~ V / 2
  EXPECT_NEAR(rest.mean().item<double>(), (V - 1) / 2.0, 5 * (V / std::sqrt(12.0)) / std::sqrt(rest.numel()));
  EXPECT_LT(tb.max().item<int64_t>(), V);
  // The log-probs are the policy's own.
  auto expect = logits.log_softmax(-1).gather(1, choice.tokens.unsqueeze(1)).squeeze(1);
  EXPECT_LT((choice.logprobs - expect).abs().max().item<double>(), 1e-5);
}

TEST(RolloutSampling, TopK1IsGreedyAndRepetitionPenaltySeesThePrompt) {
  auto m = small_model(5);
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 33}, {60}};
  auto s = sampled(12);
  s.top_k = 1;
  EXPECT_EQ(completions(run(*m, prompts, 2, s, {}, 3)), completions(run(*m, prompts, 2, greedy(12))));
  // A strong penalty: greedy never repeats a prompt or earlier completion token.
  auto pen = greedy(12);
  pen.repetition_penalty = 1e6;
  auto r = run(*m, prompts, 1, pen);
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::set<int32_t> seen(prompts[i].begin(), prompts[i].end());
    for (int32_t t : r.samples[i].tokens) EXPECT_TRUE(seen.insert(t).second) << "row " << i << " repeated " << t;
  }
}

TEST(RolloutConfig, ChecksAreEnforcedForConfigsBuiltInCode) {
  SamplingConfig s;
  s.top_p = 0;
  EXPECT_THROW(s.validate(), UsageError);
  s = SamplingConfig();
  s.long_prompts = "drop";
  EXPECT_THROW(s.validate(), UsageError);
  s = SamplingConfig();
  s.stop_strings = {""};
  EXPECT_THROW(s.validate(), UsageError);
  EngineConfig e;
  e.stop_check_interval = 0;
  EXPECT_THROW(e.validate(), UsageError);
  auto m = small_model();
  EngineOptions o;
  s = greedy(3);
  s.stop_strings = {"x"};
  EXPECT_THROW(run(*m, {{1}}, 1, s, o), UsageError);  // stop strings need a tokenizer
}

}  // namespace
}  // namespace tune::rollout

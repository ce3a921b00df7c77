#pragma once
// Before RL, as practitioners advise: how often does the model already solve these prompts?
//   tune probe   k samples per prompt (plus one greedy answer) -> pass@1 greedy / sampled, pass@k
//                (unbiased estimator), mean reward, share of prompts whose k rewards are all equal
//                (no GRPO signal), a verdict; optionally the prompts worth RL (solved sometimes).
//   tune sample  rejection sampling: n samples per prompt, the best one reaching a reward
//                threshold becomes an SFT record (a cold start, or SFT on high-reward samples).
// Both draw through the rollout engine and score with any reward of tune/reward.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tune/algo/sections.h"
#include "tune/core/json.h"
#include "tune/reward/config.h"
#include "tune/rollout/config.h"

namespace tune::algo {

// What the two commands share: the model, the prompts, the reward and how samples are drawn.
struct SamplingRunConfig {
  ModelSection model;
  std::string adapter;           // PEFT adapter applied to model.path
  std::string input;             // prompt records (RL prompt, chat, prompt/completion: docs/rollout.md)
  int64_t max_prompts = 0;       // 0: all
  int64_t batch_size = 16;       // prompts per rollout call
  int64_t seed = 0;
  reward::RewardConfig reward;   // default: one answer_match term (the record's reference)
  rollout::SamplingConfig rollout;
  rollout::EngineConfig engine;
  std::string pass_term;         // the term that decides a pass ("" = the first)
  double pass_threshold = 1.0;   // a pass: that term's value >= this
  template <class V>
  void visit_common(V& v) {
    v.section("model", model);
    v("adapter", adapter, "PEFT LoRA adapter directory applied to model.path");
    v("input", input, "JSONL of prompt records (prompt / messages with a reference, chat, prompt-completion)");
    v("max_prompts", max_prompts, "prompts read at most (0: all)", config::at_least<int64_t>(0));
    v("batch_size", batch_size, "prompts per rollout call", config::greater_than<int64_t>(0));
    v("seed", seed, "sampling seed", config::at_least<int64_t>(0));
    v.section("reward", reward);
    v.section("rollout", rollout);
    v.section("engine", engine);
    v("pass_term", pass_term, "reward term that decides a pass (default: the first)");
    v("pass_threshold", pass_threshold, "a pass: the term's value >= this");
  }
};

struct ProbeConfig : SamplingRunConfig {
  int64_t k = 8;                  // samples per prompt
  bool greedy = true;             // also one greedy answer per prompt
  std::string write_filtered;     // prompts solved sometimes (0 < passes < k), as the input's records
  std::string samples;            // every sample with its reward and pass, JSONL
  template <class V>
  void visit(V& v) {
    visit_common(v);
    v("k", k, "samples per prompt", config::greater_than<int64_t>(0));
    v("greedy", greedy, "also one greedy answer per prompt (pass@1 greedy)");
    v("write_filtered", write_filtered, "write the prompts solved sometimes (neither always nor never) here");
    v("samples", samples, "write every sample with its reward and pass here (JSONL)");
  }
};

struct ProbeReport {
  int64_t prompts = 0, k = 0;
  std::optional<double> pass1_greedy;  // share of prompts whose greedy answer passes
  double pass1_sampled = 0;            // mean over prompts of passes / k
  std::vector<std::pair<int64_t, double>> pass_at;  // (j, unbiased pass@j) for j = 1, 2, 4, ..., k
  double reward_mean = 0;              // over judged samples
  int64_t reward_null = 0;             // samples the reward could not judge
  double all_equal_share = 0;          // prompts whose k rewards are all equal: no GRPO signal
  double always_share = 0, never_share = 0;  // prompts passed by all k / by none
  double truncated_share = 0;          // samples cut by max_new_tokens
  double completion_length = 0;        // mean completion tokens
  int64_t filtered = 0;                // prompts written to write_filtered
  std::string verdict;                 // ready | too_hard | too_easy | little_signal
  std::string advice;
  Json to_json() const;
};

// Unbiased pass@k from n samples with c passes (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).
double pass_at_k(int64_t n, int64_t c, int64_t k);

ProbeReport run_probe(const ProbeConfig& config);

struct SampleConfig : SamplingRunConfig {
  int64_t n = 8;                 // samples per prompt
  double min_reward = 1.0;       // the best sample must reach this total reward
  std::string out;               // SFT records (JSONL: messages with the chosen answer)
  template <class V>
  void visit(V& v) {
    visit_common(v);
    v("n", n, "samples per prompt", config::greater_than<int64_t>(0));
    v("min_reward", min_reward, "the best sample's total reward must reach this to be kept");
    v("out", out, "SFT records written here (JSONL)");
  }
};

struct SampleReport {
  int64_t prompts = 0, kept = 0, samples = 0;
  double best_reward_mean = 0;  // over kept prompts
  Json to_json() const;
};

SampleReport run_sample(const SampleConfig& config);

}  // namespace tune::algo

#pragma once
// The rollout engine's settings: how each completion is drawn (SamplingConfig, per call) and how
// the engine runs (EngineConfig, per engine). Both are typed config sections (a `rollout:` block
// of an RL config binds onto them). Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "tune/core/config.h"

namespace tune::rollout {

struct SamplingConfig {
  int64_t max_new_tokens = 256;
  // 0 = greedy (argmax). The log-probs are always those of the unmodified policy at this
  // temperature (temperature 1 when greedy): see docs/rollout.md.
  double temperature = 1.0;
  // Off by default and in RL presets: with any of these the tokens are no longer drawn from the
  // policy whose log-probs the engine returns (and the trainer computes).
  int64_t top_k = 0;                // 0 = off
  double top_p = 1.0;               // 1 = off
  double repetition_penalty = 1.0;  // 1 = off; CTRL rule over prompt + completion tokens
  // A completion also ends with the token whose text completes one of these (the token and the
  // stop string stay in the completion, the reward sees them).
  std::vector<std::string> stop_strings;
  int64_t max_prompt_length = 0;             // 0 = no limit
  std::string long_prompts = "truncate_left";  // truncate_left | skip: prompts over max_prompt_length

  template <class V>
  void visit(V& v) {
    v("max_new_tokens", max_new_tokens, "completion tokens at most (a completion that reaches it is truncated)",
      config::greater_than<int64_t>(0));
    v("temperature", temperature, "sampling temperature (0 = greedy); the log-probs use the same temperature",
      config::at_least(0.0));
    v("top_k", top_k, "keep the k most likely tokens (0 = off; changes the sampled distribution)",
      config::at_least<int64_t>(0));
    v("top_p", top_p, "nucleus sampling mass (1 = off; changes the sampled distribution)", check_top_p());
    v("repetition_penalty", repetition_penalty, "CTRL repetition penalty (1 = off; changes the sampled distribution)",
      config::greater_than(0.0));
    v("stop_strings", stop_strings, "texts that end a completion (the stop string is kept)", check_stop_strings());
    v("max_prompt_length", max_prompt_length, "prompt tokens at most (0 = no limit)", config::at_least<int64_t>(0));
    v("long_prompts", long_prompts, "truncate_left | skip: what happens to a prompt over max_prompt_length",
      config::one_of({"truncate_left", "skip"}));
  }
  // Re-runs the checks of visit() (for configs built in code); throws tune::UsageError.
  void validate() const;
  // True when the tokens are drawn from the policy's own distribution at `temperature`.
  bool samples_the_policy() const { return top_k == 0 && top_p >= 1.0 && repetition_penalty == 1.0; }

  static config::Check<double> check_top_p();
  static config::Check<std::vector<std::string>> check_stop_strings();
};

struct EngineConfig {
  // Decoding steps between host checks (EOS, stop strings, finished rows leaving the batch). No
  // other step waits for the device; a finished row costs at most this many wasted steps.
  int64_t stop_check_interval = 8;
  // Fold LoRA adapters into the base weights for the rollout (faster decoding) and put the saved
  // unmerged weights back after it, bit for bit.
  bool merge_lora = false;
  // Finished rows leave the batch (their KV cache rows are dropped, a copy of the cache) once they
  // are at least this share of the running rows; until then they ride along, masked out.
  double drop_finished_share = 0.25;
  // Synchronise the device at phase boundaries so the prefill / decode / sampling split is exact on
  // an accelerator (on the CPU it always is). Costs a little speed.
  bool profile = false;

  template <class V>
  void visit(V& v) {
    v("stop_check_interval", stop_check_interval, "decoding steps between host-side stop checks",
      config::in_range<int64_t>(1, 1024));
    v("merge_lora", merge_lora, "merge LoRA adapters into the weights during rollouts (restored exactly after)");
    v("drop_finished_share", drop_finished_share, "share of finished rows at which they leave the batch (0: at once)",
      config::in_range(0.0, 1.0));
    v("profile", profile, "synchronise the device between phases for an exact time split");
  }
  void validate() const;
};

}  // namespace tune::rollout

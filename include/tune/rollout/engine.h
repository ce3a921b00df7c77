#pragma once
// The rollout engine: G sampled completions for each prompt, from the very model being trained,
// as padded tensors on its device with the per-token log-probs the sampler used. GRPO, PPO,
// `tune generate`, `tune probe` and `tune sample` all draw through it.
//
//   auto prompts = rollout::load_prompts("prompts.jsonl", masker);      // rendered, with references
//   rollout::RolloutEngine engine(*policy.model, rollout::engine_options(tokenizer, cfg.engine,
//                                                                        &policy.lora));
//   torch::Generator gen = rollout::make_generator(device, seed);       // the caller's RNG stream
//   rollout::RolloutBatch r = engine.rollout(rollout::prompt_ids(prompts), /*G=*/8, cfg.sampling, gen);
//   // r.input_ids [N, T], N = 8 * prompts: prompt then completion, right-padded. The trainer's pass:
//   torch::Tensor logp = algo::completion_logprobs(model, r, cfg.sampling.temperature);  // [N, Tc]
//   torch::Tensor ratio = (logp - r.logprobs).exp();   // exactly 1 before the first update
//   // rewards: r.samples[i].text with prompts[r.samples[i].prompt_index].reference; groups are
//   // rows [g * G, (g + 1) * G).
//
// Layout (N = kept prompts x G rows, prompt-major: rows [k G, (k+1) G) are the G samples of the
// k-th kept prompt). Row r holds its prompt's P_r tokens at [0, P_r), its L_r completion tokens at
// [P_r, P_r + L_r), then padding: RIGHT padding, so the trainer's forward needs no attention mask
// (causal attention never lets a real token see the padding after it) and positions are 0..T-1,
// exactly as in a supervised batch. Completion-aligned tensors [N, Tc] hold completion token j of
// row r in column j; gather_completion() maps a [N, T] per-token tensor (label-aligned:
// value t belongs to token t) onto that layout.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"
#include "tune/rollout/config.h"
#include "tune/rollout/stops.h"
#include "tune/text/tokenizer.h"

namespace tune::rollout {

// One row of a rollout, on the host.
struct SampleInfo {
  int64_t prompt_index = 0;       // index into the prompts given to rollout()
  int64_t prompt_length = 0;      // P_r (after truncation)
  int64_t completion_length = 0;  // L_r, the EOS / stop token included
  FinishReason finish = FinishReason::length;
  bool truncated = false;         // reached max_new_tokens without an EOS or stop string
  bool prompt_truncated = false;  // the prompt lost tokens on the left to max_prompt_length
  std::vector<int32_t> tokens;    // the completion's tokens
  std::string text;               // decoded with special tokens skipped ("" without a tokenizer)
};

struct RolloutStats {
  int64_t prompts = 0;            // given
  int64_t prompts_truncated = 0;  // over max_prompt_length, truncated from the left
  int64_t prompts_skipped = 0;    // over max_prompt_length, skipped (long_prompts: skip)
  int64_t distinct_prompts = 0;   // prefilled (identical prompts share one prefill)
  int64_t samples = 0;            // rows N
  int64_t completion_tokens = 0;  // sum of L_r
  int64_t decode_steps = 0;
  int64_t row_steps = 0;          // rows x steps actually computed (finished rows riding along count)
  int64_t stop_checks = 0;
  int64_t rows_dropped = 0;       // finished rows removed from the running batch
  double prefill_seconds = 0;     // prompt forward passes + sharing the caches across samples
  double decode_seconds = 0;      // one-token forward passes
  double sampling_seconds = 0;    // token choice and log-probs
  double host_seconds = 0;        // stop checks, dropping rows, building the output
  double total_seconds = 0;
};

struct RolloutBatch {
  int64_t group_size = 1;  // G
  // [N, T] on the model's device; T = max_r (P_r + L_r).
  torch::Tensor input_ids;        // int64, pad_id after the completion
  torch::Tensor attention_mask;   // int64, 1 on prompt and completion tokens
  torch::Tensor completion_mask;  // int64, 1 on completion tokens (the EOS included)
  // [N, Tc] on the model's device; Tc = max_r L_r.
  torch::Tensor completion_ids;         // int64, pad_id past L_r
  torch::Tensor completion_token_mask;  // int64, 1 for j < L_r
  torch::Tensor logprobs;               // float32, the sampler's log-probs, 0 past L_r
  // [N] on the model's device.
  torch::Tensor prompt_lengths;      // int64 P_r
  torch::Tensor completion_lengths;  // int64 L_r
  torch::Tensor prompt_index;        // int64
  torch::Tensor truncated;           // bool
  std::vector<SampleInfo> samples;   // N, on the host
  RolloutStats stats;

  int64_t size() const { return static_cast<int64_t>(samples.size()); }
  // x [N, T] with x[r, t] belonging to token t -> [N, Tc] with column j = x[r, P_r + j] (0 past L_r).
  torch::Tensor gather_completion(const torch::Tensor& x) const;
};

struct EngineOptions {
  EngineConfig config;
  std::vector<int64_t> eos_ids;                 // every id that ends a completion
  int64_t pad_id = 0;                           // fills padding
  const text::Tokenizer* tokenizer = nullptr;  // texts and stop strings; null: no texts
  const lora::LoraSet* lora = nullptr;          // the adapters config.merge_lora merges
};

// EOS ids = the tokenizer's eos plus every generation_config.json eos_token_id; pad = its pad
// token, else its eos, else 0. The tokenizer (and the LoRA set) must outlive the engine.
EngineOptions engine_options(const text::Tokenizer& tokenizer, EngineConfig config = {},
                             const lora::LoraSet* lora = nullptr);

class RolloutEngine {
 public:
  RolloutEngine(model::CausalLM& model, EngineOptions options);

  // G completions per prompt (each prompt non-empty). Runs without gradients, the model in eval
  // mode (its train/eval mode is restored after), adapters merged when config.merge_lora (and
  // unmerged after); draws every random number from `generator`, which must live on the model's
  // device. Identical prompts are prefilled once; each prompt's KV cache is shared by its G rows.
  RolloutBatch rollout(const std::vector<std::vector<int32_t>>& prompts, int64_t group_size,
                       const SamplingConfig& sampling, torch::Generator& generator);

  const EngineOptions& options() const { return options_; }

 private:
  model::CausalLM& model_;
  EngineOptions options_;
};

}  // namespace tune::rollout

#pragma once
// Batched autoregressive generation with a preallocated KV cache (the RL rollout engine).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tune/model/causal_lm.h"

namespace tune::model {

struct GenerationConfig {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  double repetition_penalty = 1.0;  // 1 = off; CTRL rule over prompt + generated tokens
  std::vector<int64_t> stop_ids;    // a sequence ends after emitting one of these
  uint64_t seed = 0;
  bool return_logprobs = false;
  int64_t pad_id = 0;  // fills left padding (never attended to)
};

enum class FinishReason { stop, length };
std::string_view finish_reason_name(FinishReason r);  // "stop" / "length"

struct Generation {
  std::vector<int32_t> tokens;  // generated ids, the stop token included when one was hit
  FinishReason finish = FinishReason::length;
  // When requested: per generated token, log_softmax(logits / temperature) at that token
  // (temperature 0: log_softmax(logits)), before repetition penalty, top-k and top-p.
  // This is the policy's log-prob at that temperature, what PPO/GRPO ratios need.
  std::vector<float> logprobs;
};

// Prompts of any lengths (each non-empty) -> one Generation each, in order. Prompts are
// left-padded into one batch; sequences that finish leave the batch (their cache rows are dropped).
// Runs under NoGradGuard with the model's own dtype/device; sampling draws from a torch::Generator
// seeded with `config.seed` on the model's device.
std::vector<Generation> generate(CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationConfig& config);

// The next-token choice for a batch of logits [B, V] (fp32), as generate() makes it.
// `history` [B, L] (int64, -1 = ignore) feeds the repetition penalty. Returns ids [B] (int64).
torch::Tensor sample_next(const torch::Tensor& logits, const torch::Tensor& history, const GenerationConfig& config,
                          torch::Generator& generator);

}  // namespace tune::model

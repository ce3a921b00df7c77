#pragma once
// The next-token choice of one decoding step, and the policy log-prob of the chosen token.
//
// The log-prob is log_softmax(logits / T)[token] of the UNMODIFIED logits (T = 1 when greedy),
// computed with the very operations of ops::token_logprob (float32, z = logits / T, z[token] -
// logsumexp(z)): what the trainer recomputes for the loss. The token itself is drawn from
// softmax(modified logits / T), where the repetition penalty, top-k and top-p (applied in that
// order, as Hugging Face does) modify the logits; with all three off the two distributions are
// the same, otherwise the sampled tokens are not the policy's samples (docs/rollout.md).
#include <torch/torch.h>

#include "tune/rollout/config.h"

namespace tune::rollout {

struct StepChoice {
  torch::Tensor tokens;    // [n] int64
  torch::Tensor logprobs;  // [n] float32, the policy's log-prob of each token at the temperature
};

// logits [n, V] (any float dtype); `seen` [n, V] bool marks the tokens the repetition penalty
// applies to (undefined: none). Draws from `generator` (on the logits' device) unless greedy.
// Never waits for the device.
StepChoice choose_next(const torch::Tensor& logits, const torch::Tensor& seen, const SamplingConfig& sampling,
                       torch::Generator& generator);

// A generator for `device` (CPU or CUDA) seeded with `seed`: the caller owns it, so successive
// rollouts continue its stream, and get_state()/set_state() replay a rollout exactly.
torch::Generator make_generator(torch::Device device, uint64_t seed);

}  // namespace tune::rollout

#pragma once
// Per-token log-probabilities of a batch's labels under the model: the quantity SFT (its negative
// sum), DPO (sums per sequence) and the RL algorithms share. Goes through ops::token_logprob, so
// the [N, V] float32 log-softmax is never materialised (and the CUDA kernel is used when present).
#include <torch/torch.h>

#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"
#include "tune/rollout/engine.h"

namespace tune::algo {

// logp [B, T] float32: logp[b, t] = log p(labels[b, t] | tokens < t), 0 where labels == -100
// (collate's labels are unshifted: labels[t] is the label of input_ids[t]). Column 0 is always 0.
// The step's [N, V] logits are kept for the backward when they take at most `keep_logits_bytes`
// (faster: no LM-head recompute); above it the hidden-state form never stores them.
inline constexpr int64_t kKeepLogitsBytes = 256LL << 20;
torch::Tensor label_logprobs(model::CausalLM& model, const data::Batch& batch, double temperature = 1.0,
                             int64_t keep_logits_bytes = kKeepLogitsBytes);

// The same pass over a rollout's right-padded tensors: log p(completion token j | prompt, tokens
// < j) at `temperature` for every row, [N, Tc] float32 aligned with rollout.logprobs (0 past each
// completion's length). Differentiable: the RL losses' log-probs. Before any update it equals the
// sampler's rollout.logprobs (tests/rollout/test_rollout_agreement.cpp).
torch::Tensor completion_logprobs(model::CausalLM& model, const rollout::RolloutBatch& rollout, double temperature,
                                  int64_t keep_logits_bytes = kKeepLogitsBytes);

// A rollout as a supervised batch: input_ids as they are, labels = the completion tokens (-100 on
// prompt and padding), right padding, positions 0..T-1.
data::Batch rollout_as_batch(const rollout::RolloutBatch& rollout);

}  // namespace tune::algo

#pragma once
// Per-token log-probabilities of a batch's labels under the model: the quantity SFT (its negative
// sum), DPO (sums per sequence) and the RL algorithms share. Goes through ops::token_logprob, so
// the [N, V] float32 log-softmax is never materialised (and the CUDA kernel is used when present).
#include <torch/torch.h>

#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"

namespace tune::algo {

// logp [B, T] float32: logp[b, t] = log p(labels[b, t] | tokens < t), 0 where labels == -100
// (collate's labels are unshifted: labels[t] is the label of input_ids[t]). Column 0 is always 0.
torch::Tensor label_logprobs(model::CausalLM& model, const data::Batch& batch, double temperature = 1.0);

}  // namespace tune::algo

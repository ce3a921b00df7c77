#pragma once
// Per-token log-probability of the label under a softmax over the vocabulary, without ever holding
// the whole [N, V] float32 log-softmax: rows are processed in chunks, and the backward pass
// recomputes each chunk's softmax instead of saving it (the memory of a fused cross-entropy).
//
//   logp[i]    = log softmax(logits[i] / T)[labels[i]]        (0 where labels[i] == ignore_index)
//   entropy[i] = -sum_v p[i,v] log p[i,v], p = softmax(logits[i] / T)   (0 where ignored)
//
// Both outputs are float32 [N] and differentiable (wrt logits, or wrt hidden and the LM head weight).
// The loss of SFT is -logp summed over label tokens; RL uses logp directly.
#include <torch/torch.h>

#include <cstdint>

namespace tune::ops {

inline constexpr int64_t kIgnoreIndex = -100;

struct TokenLogprobOptions {
  double temperature = 1.0;     // logits are divided by it (sampling temperature of a rollout)
  bool compute_entropy = false;  // also return the per-token entropy
  int64_t chunk_rows = 0;        // rows per chunk; 0 = default_chunk_rows(V)
  int64_t ignore_index = kIgnoreIndex;
};

struct TokenLogprobResult {
  torch::Tensor logprob;  // [N] float32
  torch::Tensor entropy;  // [N] float32; undefined unless compute_entropy
};

// Rows per chunk so that one chunk's float32 logits take at most ~256 MiB (at least 1 row).
int64_t default_chunk_rows(int64_t vocab_size);

// logits [N, V] (float32, bfloat16, float16 or float64), labels [N] int64 on the same device.
TokenLogprobResult token_logprob(const torch::Tensor& logits, const torch::Tensor& labels,
                                 const TokenLogprobOptions& options = {});

// The LM head folded in: logits = hidden [N, H] @ lm_head_weight[V, H]^T, one chunk at a time, so
// the [N, V] logits are never stored either. hidden and weight share a float dtype.
TokenLogprobResult token_logprob_from_hidden(const torch::Tensor& hidden,
                                             const torch::Tensor& lm_head_weight,
                                             const torch::Tensor& labels,
                                             const TokenLogprobOptions& options = {});

}  // namespace tune::ops

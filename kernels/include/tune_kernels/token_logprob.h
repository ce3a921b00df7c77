#pragma once
// Fused per-token log-probability over a vocabulary, one thread block per row. Each block streams
// its row once with an online log-sum-exp (running max, sum of exp, and sum of exp * z for the
// entropy), so no [N, V] float32 log-softmax is ever written. Accumulation is float32.
//
//   z         = logits[i] / T
//   lse[i]    = log sum_v exp(z_v)                     (0 where ignored: such rows are never read)
//   logp[i]   = z[labels[i]] - lse[i]                  (0 where labels[i] == ignore_index)
//   entropy[i]= lse[i] - sum_v p_v z_v, p = softmax(z)  (0 where ignored)
//
// A label outside [0, V) that is not the ignore index gives NaN (the caller validates first).
#include "tune_kernels/common.h"

namespace tune::kernels {

struct TokenLogprobArgs {
  const void* logits = nullptr;  // [N, V] rows row_stride elements apart, element type `dtype`
  DType dtype = DType::f32;
  int64_t rows = 0;              // N
  int64_t vocab = 0;             // V
  int64_t row_stride = 0;        // elements between consecutive rows (>= V)
  const int64_t* labels = nullptr;  // [N]
  int64_t ignore_index = -100;
  float temperature = 1.0f;
};

// Writes logprob [N]; entropy [N] and lse [N] when non-null (the backward pass needs lse, and the
// entropy when an entropy gradient flows). All outputs float32.
cudaError_t token_logprob_forward(const TokenLogprobArgs& args, float* logprob, float* entropy, float* lse,
                                  cudaStream_t stream);

// dlogits[i, v] = ( g_lp[i] * (onehot(y_i)_v - p_v) - g_ent[i] * p_v * (log p_v + H_i) ) / T
// with p recomputed from the saved lse, 0 for ignored rows. grad_logprob / grad_entropy may each be
// null (no gradient); grad_entropy needs the saved entropy. grad_logits is [N, V] contiguous in
// grad_dtype (the logits' type for the logits path, f32 when the caller accumulates).
cudaError_t token_logprob_backward(const TokenLogprobArgs& args, const float* lse, const float* entropy,
                                   const float* grad_logprob, const float* grad_entropy, void* grad_logits,
                                   DType grad_dtype, cudaStream_t stream);

// Benchmark baseline only: the unfused path a framework takes (log_softmax written as float32
// [N, V], then a gather). log_softmax_out must hold N * V floats.
cudaError_t token_logprob_naive(const TokenLogprobArgs& args, float* log_softmax_out, float* logprob,
                                cudaStream_t stream);

}  // namespace tune::kernels

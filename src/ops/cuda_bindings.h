#pragma once
// LibTorch bindings of the CUDA kernels in kernels/ (src/ops/cuda_*.cpp). They exist only in a build
// with nvcc and a CUDA LibTorch (TUNE_WITH_CUDA_KERNELS); the ops call them for CUDA tensors from
// their dispatch hook and otherwise run their LibTorch reference. Inputs are already validated by
// the public op (shapes, label range); these check device, dtype and layout, and run on the
// current CUDA stream of the tensors' device.
#ifdef TUNE_WITH_CUDA_KERNELS
#include <torch/torch.h>

#include <cstdint>

#include "tune/ops/advantages.h"
#include "tune/ops/kl.h"
#include "tune/ops/token_logprob.h"

namespace tune::ops::cuda {

// The fused kernel reads float32, bfloat16 and float16 logits (float64 stays on the reference).
bool token_logprob_supported(torch::ScalarType dtype);

// logits [N, V], labels [N] int64. Differentiable wrt logits (autograd Function; backward writes
// the [N, V] gradient in the logits' dtype, recomputing the softmax from the saved [N] lse).
TokenLogprobResult token_logprob(const torch::Tensor& logits, const torch::Tensor& labels, double temperature,
                                 bool compute_entropy, int64_t ignore_index);

// hidden [N, H], weight [V, H]: cuBLAS matmul per chunk of chunk_rows rows, then the fused kernel on
// that chunk's logits; backward recomputes each chunk's logits (float32 chunk gradient, as the
// reference). Differentiable wrt hidden and weight.
TokenLogprobResult token_logprob_from_hidden(const torch::Tensor& hidden, const torch::Tensor& weight,
                                             const torch::Tensor& labels, double temperature, bool compute_entropy,
                                             int64_t chunk_rows, int64_t ignore_index);

// [B, T] -> [B, T] in logp's dtype, differentiable wrt logp and ref_logp.
torch::Tensor kl_penalty(const torch::Tensor& logp, const torch::Tensor& ref_logp, const torch::Tensor& mask,
                         KlKind kind);

GaeResult gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma,
              double lambda);

torch::Tensor group_advantages(const torch::Tensor& rewards, int64_t group_size, bool scale_by_std, double eps);

}  // namespace tune::ops::cuda
#endif

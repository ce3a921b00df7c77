#pragma once
// Elementwise and scan kernels of PPO / GRPO: KL estimators, GAE, group-normalised advantages.
// All inputs and outputs are float32, masks are bool (1 byte), tensors contiguous.
#include "tune_kernels/common.h"

namespace tune::kernels {

enum class KlEstimator : int { k1 = 0, k2 = 1, k3 = 2 };

// d = ref_logp - logp;  k1 = -d,  k2 = d^2 / 2,  k3 = expm1(d) - d;  0 where !mask.
// dkl_dd (nullable) receives dk/dd (k1: -1, k2: d, k3: expm1(d); 0 where masked), from which the
// caller forms grad_logp = -g * dk/dd and grad_ref = g * dk/dd.
cudaError_t kl_penalty(const float* logp, const float* ref_logp, const bool* mask, int64_t count, KlEstimator kind,
                       float* kl, float* dkl_dd, cudaStream_t stream);

// GAE over [B, T], one thread per sequence scanning backwards over its valid positions only (a
// masked position is skipped; the value after the last valid position is 0). Writes advantages
// and returns (advantages + values), both 0 where masked.
cudaError_t gae(const float* rewards, const float* values, const bool* mask, int64_t batch, int64_t steps, float gamma,
                float lambda, float* advantages, float* returns, cudaStream_t stream);

// rewards [groups * group_size], groups contiguous: r - mean(group), divided by
// (unbiased std(group) + eps) when scale_by_std and group_size > 1.
cudaError_t group_advantages(const float* rewards, int64_t groups, int64_t group_size, bool scale_by_std, float eps,
                             float* advantages, cudaStream_t stream);

}  // namespace tune::kernels

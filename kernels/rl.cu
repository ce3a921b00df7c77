// KL estimators (elementwise), GAE (one thread per sequence) and group advantages (one thread per group).
#include <cmath>

#include "tune_kernels/rl.h"

namespace tune::kernels {
namespace {

__global__ void kl_kernel(const float* __restrict__ logp, const float* __restrict__ ref_logp, const bool* __restrict__ mask,
                          int64_t count, KlEstimator kind, float* __restrict__ kl, float* __restrict__ dkl_dd) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  float k = 0.f, dk = 0.f;
  if (mask[i]) {
    const float d = ref_logp[i] - logp[i];  // log(pi_ref / pi)
    switch (kind) {
      case KlEstimator::k1: k = -d; dk = -1.f; break;
      case KlEstimator::k2: k = 0.5f * d * d; dk = d; break;
      case KlEstimator::k3: {
        const float e = expm1f(d);  // precise when pi ~ pi_ref
        k = e - d;
        dk = e;
        break;
      }
    }
  }
  kl[i] = k;
  if (dkl_dd) dkl_dd[i] = dk;
}

__global__ void gae_kernel(const float* __restrict__ rewards, const float* __restrict__ values, const bool* __restrict__ mask,
                           int64_t batch, int64_t steps, float gamma, float lambda, float* __restrict__ adv,
                           float* __restrict__ ret) {
  const int64_t b = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (b >= batch) return;
  const int64_t base = b * steps;
  float next_value = 0.f, next_adv = 0.f;
  const float gl = gamma * lambda;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const int64_t i = base + t;
    if (!mask[i]) {  // skipped: the carried state passes through unchanged
      adv[i] = 0.f;
      ret[i] = 0.f;
      continue;
    }
    const float v = values[i];
    const float delta = rewards[i] + gamma * next_value - v;
    const float a = delta + gl * next_adv;
    adv[i] = a;
    ret[i] = a + v;
    next_adv = a;
    next_value = v;
  }
}

__global__ void group_kernel(const float* __restrict__ rewards, int64_t groups, int64_t group_size, bool scale_by_std,
                             float eps, float* __restrict__ adv) {
  const int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (g >= groups) return;
  const float* r = rewards + g * group_size;
  float* out = adv + g * group_size;
  float sum = 0.f;
  for (int64_t j = 0; j < group_size; ++j) sum += r[j];
  const float mean = sum / static_cast<float>(group_size);
  float scale = 1.f;
  if (scale_by_std && group_size > 1) {
    float sq = 0.f;  // two-pass variance: no cancellation when rewards share a large offset
    for (int64_t j = 0; j < group_size; ++j) sq += (r[j] - mean) * (r[j] - mean);
    scale = 1.f / (sqrtf(sq / static_cast<float>(group_size - 1)) + eps);
  }
  for (int64_t j = 0; j < group_size; ++j) out[j] = (r[j] - mean) * scale;
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

cudaError_t kl_penalty(const float* logp, const float* ref_logp, const bool* mask, int64_t count, KlEstimator kind,
                       float* kl, float* dkl_dd, cudaStream_t stream) {
  if (count < 0) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  if (!logp || !ref_logp || !mask || !kl) return cudaErrorInvalidValue;
  kl_kernel<<<blocks_for(count, 256), 256, 0, stream>>>(logp, ref_logp, mask, count, kind, kl, dkl_dd);
  return cudaGetLastError();
}

cudaError_t gae(const float* rewards, const float* values, const bool* mask, int64_t batch, int64_t steps, float gamma,
                float lambda, float* advantages, float* returns, cudaStream_t stream) {
  if (batch < 0 || steps < 0) return cudaErrorInvalidValue;
  if (batch == 0 || steps == 0) return cudaSuccess;
  if (!rewards || !values || !mask || !advantages || !returns) return cudaErrorInvalidValue;
  gae_kernel<<<blocks_for(batch, 128), 128, 0, stream>>>(rewards, values, mask, batch, steps, gamma, lambda, advantages,
                                                         returns);
  return cudaGetLastError();
}

cudaError_t group_advantages(const float* rewards, int64_t groups, int64_t group_size, bool scale_by_std, float eps,
                             float* advantages, cudaStream_t stream) {
  if (groups < 0 || group_size < 1) return cudaErrorInvalidValue;
  if (groups == 0) return cudaSuccess;
  if (!rewards || !advantages) return cudaErrorInvalidValue;
  group_kernel<<<blocks_for(groups, 128), 128, 0, stream>>>(rewards, groups, group_size, scale_by_std, eps, advantages);
  return cudaGetLastError();
}

}  // namespace tune::kernels

#pragma once
// Advantage estimators of PPO (GAE) and GRPO (group-relative). Both return detached tensors.
#include <torch/torch.h>

#include <cstdint>

namespace tune::ops {

struct GaeResult {
  torch::Tensor advantages;  // [B, T] float32, 0 where masked
  torch::Tensor returns;     // [B, T] advantages + values, 0 where masked
};

// Generalised advantage estimation, one reverse scan per sequence over its valid positions only:
// a masked position is skipped (its reward and value are ignored), the value after the last valid
// position is 0. rewards, values, mask: [B, T].
//   delta_t = r_t + gamma * V_next - V_t;  A_t = delta_t + gamma * lambda * A_next
GaeResult gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma,
              double lambda);

// GRPO: rewards [B * G] with the G completions of each prompt adjacent. Returns [B * G] float32:
// r - mean(group), divided by (std(group) + eps) when scale_by_std (std unbiased, as TRL).
// scale_by_std = false is Dr. GRPO. A group of one has advantage 0.
torch::Tensor group_advantages(const torch::Tensor& rewards, int64_t group_size, bool scale_by_std = true,
                               double eps = 1e-4);

}  // namespace tune::ops

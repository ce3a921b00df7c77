#pragma once
// Advantage estimators of PPO (GAE) and GRPO (group-relative). Both return detached tensors.
#include <torch/torch.h>

#include <cstdint>
#include <string_view>

namespace tune::ops {

struct GaeResult {
  torch::Tensor advantages;  // [B, T] float32 (float64 for float64 rewards off the kernel path), 0 where masked
  torch::Tensor returns;     // [B, T] advantages + values, 0 where masked
};

// Generalised advantage estimation, one reverse scan per sequence over its valid positions only:
// a masked position is skipped (its reward and value are ignored), the value after the last valid
// position is 0. rewards, values, mask: [B, T].
//   delta_t = r_t + gamma * V_next - V_t;  A_t = delta_t + gamma * lambda * A_next
GaeResult gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma,
              double lambda);

// GRPO: rewards [B * G] with the G completions of each prompt adjacent. Returns [B * G] float32
// (float64 for float64 rewards off the kernel path): r - mean(group), divided by (std(group) + eps)
// when scale_by_std (std unbiased, as TRL). scale_by_std = false is Dr. GRPO. A group of one has
// advantage 0. The CUDA kernel serves CUDA tensors.
torch::Tensor group_advantages(const torch::Tensor& rewards, int64_t group_size, bool scale_by_std = true,
                               double eps = 1e-4);

// The baseline subtracted from each reward, and what the difference is divided by.
enum class GroupBaseline {
  mean,           // r - mean(group)                                   GRPO, Dr. GRPO
  leave_one_out,  // r - mean(other members) = n/(n-1) (r - mean)      RLOO
};
enum class RewardScale {
  group,  // / (std(group) + eps)     GRPO, TRL scale_rewards "group" (default)
  batch,  // / (std(all rewards) + eps)  TRL "batch" (PPO-Lite): the group baseline stays
  none,   // no division              Dr. GRPO, TRL "none"
};
GroupBaseline parse_group_baseline(std::string_view name);  // "mean" | "leave_one_out" (alias "rloo")
RewardScale parse_reward_scale(std::string_view name);      // "group" | "batch" | "none"
std::string_view group_baseline_name(GroupBaseline baseline);
std::string_view reward_scale_name(RewardScale scale);

struct GroupAdvantageOptions {
  int64_t group_size = 1;
  GroupBaseline baseline = GroupBaseline::mean;
  RewardScale scale = RewardScale::group;
  double eps = 1e-4;  // TRL 1e-4; verl 1e-6; OpenRLHF 1e-9
};

// Every estimator of the group family. rewards [B * G], groups adjacent. valid [B * G] (bool or 0/1;
// undefined = all valid) marks the samples that have a reward: an excluded sample (a reward that
// returned null, a failed rollout) takes no part in any mean or std, whatever its reward holds
// (nan included), and gets advantage 0. Stds are unbiased over the valid members (0 when fewer than
// two); a group with fewer than two valid members gives 0 everywhere (no baseline to compare with).
// "batch" takes the std over every valid reward of the call: pass the whole step (all ranks).
// Detached, float32 (float64 for float64 rewards). CUDA tensors with baseline mean, scale group or
// none and no mask take the group-advantage kernel; the rest runs as LibTorch ops on any device.
torch::Tensor group_advantages(const torch::Tensor& rewards, const GroupAdvantageOptions& options,
                               const torch::Tensor& valid = {});

// [B] bool: groups that carry no learning signal (fewer than two valid members, or all valid
// rewards equal): DAPO's dynamic sampling drops them; their share is a metric.
torch::Tensor zero_variance_groups(const torch::Tensor& rewards, int64_t group_size, const torch::Tensor& valid = {});

}  // namespace tune::ops

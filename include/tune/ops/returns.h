#pragma once
// Per-token rewards of RLHF with a KL penalty, discounted returns and REINFORCE++ advantages.
// All detached ([N, T] completion tokens, mask bool or 0/1), float32 (float64 for float64 inputs).
//
//   token_rewards:  r_t = -kl_coef * kl_t at every valid token, plus the sequence score at the last
//                   valid token (InstructGPT; TRL's PPO; OpenRLHF compute_reward). The score is
//                   first lowered by missing_eos_penalty when the completion did not end with EOS
//                   (TRL), then clipped to [-score_clip, score_clip] (OpenRLHF reward_clip_range).
//   discounted_returns: G_t = sum_{k >= t} gamma^(k-t) r_k over the valid positions (GAE with
//                   V = 0 and lambda = 1: the same reverse scan, CUDA kernel included).
//   reinforce_pp_advantages: G_t whitened over every valid token of the call (REINFORCE++, Hu 2025;
//                   OpenRLHF advantage_estimator "reinforce"). Its baseline form ("reinforce_baseline")
//                   is the same call on token rewards built from score - mean(group):
//                     ops::group_advantages(score, {G, GroupBaseline::mean, RewardScale::none}).
#include <torch/torch.h>

#include "tune/ops/kl.h"

namespace tune::ops {

struct TokenRewardOptions {
  double kl_coef = 0.05;           // beta (TRL PPO 0.05, OpenRLHF 0.01, verl 0.001)
  KlKind kl_estimator = KlKind::k1;  // TRL / OpenRLHF put k1 in the reward
  double missing_eos_penalty = 0;  // subtracted from the score of a completion without EOS; 0 = off
  double score_clip = 0;           // |score| <= score_clip after the penalty; 0 = off (OpenRLHF 10)
};

// score [N]; logp, ref_logp, mask [N, T] (logp: the sampling policy's own, i.e. old log-probs);
// ended_with_eos [N] bool (undefined = every completion ended). A row without valid tokens gets
// no score. Returns [N, T], 0 where masked.
torch::Tensor token_rewards(const torch::Tensor& score, const torch::Tensor& logp, const torch::Tensor& ref_logp,
                            const torch::Tensor& mask, const torch::Tensor& ended_with_eos,
                            const TokenRewardOptions& options = {});

// rewards, mask [N, T] -> [N, T], 0 where masked; masked positions are skipped, not ends of a sequence.
torch::Tensor discounted_returns(const torch::Tensor& rewards, const torch::Tensor& mask, double gamma);

// Whitened discounted returns: (G - mean) / sqrt(var + eps), mean and unbiased var over every valid
// token of the call (pass the whole step). [N, T], 0 where masked.
torch::Tensor reinforce_pp_advantages(const torch::Tensor& rewards, const torch::Tensor& mask, double gamma = 1.0,
                                      double eps = 1e-8);

}  // namespace tune::ops

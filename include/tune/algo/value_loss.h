#pragma once
// PPO's critic loss and its diagnostics, as pure functions of per-token tensors.
//
//   algo::ValueLossResult v = algo::value_loss({.clip = 0.2, .vf_coef = 0.1},
//                                              values,      // [N, T] critic output, with graph
//                                              old_values,  // [N, T] at rollout time
//                                              returns,     // [N, T] GAE advantages + old values
//                                              mask);
//   return train::StepLoss{v.loss_sum, v.metrics};      // v.count = active tokens of the micro-batch
//
// Per valid token, with R the return and V_old the rollout's value (TRL PPO, OpenRLHF ValueLoss,
// verl compute_value_loss):
//   V_clip = V_old + clip(V - V_old, -clip, clip)
//   loss   = vf_coef * 0.5 * max((V - R)^2, (V_clip - R)^2)      clip <= 0: 0.5 (V - R)^2
// summed over tokens; the count is the active tokens (a token mean over the whole step).
// The critic is its own model with its own optimizer and learning rate, so it takes its own step;
// to add it to the policy's loss in one step instead, scale its sum by (policy step count / value
// step count), both known before the forward pass (docs/rl-losses.md).
#include <torch/torch.h>

#include <map>
#include <string>

#include "tune/train/stepper.h"

namespace tune::algo {

struct ValueLossConfig {
  double clip = 0.2;     // value clip range (TRL cliprange_value 0.2; verl, OpenRLHF 0.5); <= 0 = off
  double vf_coef = 0.1;  // TRL 0.1; a separate critic step makes it a learning-rate factor
};

struct ValueLossResult {
  torch::Tensor loss_sum;  // scalar with the graph of values
  double count = 0;        // active tokens
  // value/loss (vf_coef x the loss term), value/clip_frac (share where the clipped term is larger),
  // value/mean, returns/mean, value/error (mean (V - R)^2): all per token.
  std::map<std::string, train::MetricSum> metrics;
};

ValueLossResult value_loss(const ValueLossConfig& config, const torch::Tensor& values, const torch::Tensor& old_values,
                           const torch::Tensor& returns, const torch::Tensor& mask);

// 1 - Var(R - V) / Var(R) over the valid tokens (unbiased variances), for a rollout batch's values
// and returns: 1 = the critic explains the returns, 0 = no better than their mean, < 0 = worse.
// 0 when fewer than two valid tokens or the returns do not vary.
double explained_variance(const torch::Tensor& values, const torch::Tensor& returns, const torch::Tensor& mask);

}  // namespace tune::algo

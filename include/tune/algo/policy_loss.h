#pragma once
// The policy loss GRPO and PPO share, as a pure function of per-token tensors (no model inside).
// It returns a loss SUM and the count that sum is normalised by over the whole optimizer step, so
// the step's loss and gradient do not depend on how it is split into micro-batches (or ranks):
//
//   algo::PolicyLossConfig cfg;                       // e.g. DAPO: clip 0.2 / 0.28, token mean
//   cfg.clip_high = 0.28;
//   std::vector<double> counts;                       // declared before any forward pass
//   for (const auto& mb : micro_batches) counts.push_back(algo::policy_loss_count(cfg, mb.mask));
//   stepper.step(counts, [&](int i) {
//     const auto& mb = micro_batches[i];
//     algo::PolicyLossResult r = algo::policy_loss(cfg, {.logp = policy_logp(mb),   // [N, T], with graph
//                                                        .old_logp = mb.old_logp,
//                                                        .advantages = mb.advantages,  // [N] or [N, T]
//                                                        .mask = mb.mask});
//     return train::StepLoss{r.loss_sum, r.metrics};  // r.count == counts[i]
//   });
//
// Per valid token t of completion i (A = advantage, rho = the importance ratio, sg = stop-gradient):
//   ratio   token:    rho_it = exp(clamp(logp - old_logp, -c, c))                       (PPO, GRPO)
//           sequence: s_it = exp(clamp(sg(mean_t(logp - old_logp)) + logp - sg(logp), -c, c))
//                     (GSPO's token form: the value of the length-normalised sequence ratio s_i at
//                     every token, the gradient of s_i / |o_i| per token)
//   clip:   l = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high))
//           dual clip (A < 0): l = min(l, -dual_clip A)                          (verl, OpenRLHF)
//   cispo:  l = -sg(clip(rho, 1 - clip_low, 1 + clip_high)) A logp              (MiniMax-M1)
//   plus    beta * kl_t (k1 / k2 / k3 against the reference)  minus  entropy_coef * H_t
// Aggregation over the step (its count in brackets):
//   token_mean               sum_it l / [active tokens]                      DAPO, TRL dapo/bnpo, verl token-mean
//   seq_mean_token_mean      sum_i (sum_t l / |o_i|) / [sequences]           original GRPO, TRL grpo
//   seq_mean_token_sum_norm  sum_it l / [sequences x max_completion_length]  Dr. GRPO, TRL dr_grpo
// "Sequences" are rows with at least one active token: a fully masked row (an excluded sample, a
// masked truncation) takes no part (TRL counts it in grpo / dr_grpo, diluting the others).
// Formulas, peers' names and defaults, parity figures: docs/rl-losses.md.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "tune/ops/kl.h"
#include "tune/train/stepper.h"

namespace tune::algo {

enum class PolicyObjective { clip, cispo };
enum class RatioLevel { token, sequence };
enum class LossAggregation { token_mean, seq_mean_token_mean, seq_mean_token_sum_norm };

// Names as in the configs; TRL's loss_type names are accepted for the aggregation ("dapo", "bnpo",
// "grpo", "dr_grpo") and verl's ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm").
PolicyObjective parse_policy_objective(std::string_view name);  // "clip" | "cispo"
RatioLevel parse_ratio_level(std::string_view name);            // "token" | "sequence" (GSPO)
LossAggregation parse_loss_aggregation(std::string_view name);
std::string_view policy_objective_name(PolicyObjective objective);
std::string_view ratio_level_name(RatioLevel level);
std::string_view loss_aggregation_name(LossAggregation aggregation);

struct PolicyLossConfig {
  PolicyObjective objective = PolicyObjective::clip;
  RatioLevel ratio_level = RatioLevel::token;
  LossAggregation aggregation = LossAggregation::token_mean;
  double clip_low = 0.2;          // ratio floor 1 - clip_low (TRL epsilon)
  double clip_high = 0.2;         // ratio ceiling 1 + clip_high (TRL epsilon_high; DAPO 0.28; GSPO 4e-4)
  double dual_clip = 0;           // c > 1 caps the loss of A < 0 tokens at -c A (verl clip_ratio_c 3); 0 = off
  double log_ratio_clamp = 20;    // |log rho| clamped before exp (peers 20, GSPO 10); <= 0 = off
  double beta = 0;                // KL-to-reference weight in the loss; 0 = no reference needed
  ops::KlKind kl_estimator = ops::KlKind::k3;
  double entropy_coef = 0;        // entropy bonus; needs PolicyLossInputs::entropy (with its graph)
  int64_t max_completion_length = 0;  // L_max of seq_mean_token_sum_norm (required there)
};

struct PolicyLossInputs {
  torch::Tensor logp;        // [N, T] log-probs of the sampled tokens under the policy, with graph
  torch::Tensor old_logp;    // [N, T] at rollout time; undefined = logp.detach() (one update per rollout)
  torch::Tensor ref_logp;    // [N, T] under the reference; required when beta > 0
  torch::Tensor advantages;  // [N] (one per completion) or [N, T] (per token)
  torch::Tensor mask;        // [N, T] completion tokens that count (bool or 0/1)
  torch::Tensor entropy;     // [N, T] per-token entropy; optional (a metric; the bonus when entropy_coef != 0)
};

struct PolicyLossResult {
  torch::Tensor loss_sum;  // scalar with the graph of logp (and entropy): divide by the step's summed count
  double count = 0;        // this micro-batch's count, = policy_loss_count(config, mask)
  // Sums with their counts (the step reports sum / count):
  //   loss/policy, loss/kl, loss/entropy  the loss's terms, on the loss's count (they add up to the loss;
  //                                       loss/kl only when beta > 0, loss/entropy only with a bonus)
  //   kl                 mean per-token KL to the reference (beta > 0)          per token
  //   entropy            mean per-token entropy (when given)                    per token
  //   clip_ratio/low     share of tokens clipped at the floor: rho < 1 - clip_low and A < 0 (cispo: any A)
  //   clip_ratio/high    share clipped at the ceiling: rho > 1 + clip_high and A > 0 (cispo: any A)
  //   clip_ratio/dual    share dual-clipped: A < 0 and rho > dual_clip (when dual_clip > 0)
  //   ratio/mean         mean importance ratio (GSPO: s_i at each token)
  //   approx_kl          KL(old || new) estimated per token as rho - 1 - log rho (k3)
  std::map<std::string, train::MetricSum> metrics;
  double ratio_min = 0;  // over the active tokens (a min / max across micro-batches; 1 when none)
  double ratio_max = 0;
};

// The count policy_loss will return for this mask: active tokens, sequences or sequences x L_max.
// Cheap (one reduction); call it for every micro-batch before the step's first forward pass.
double policy_loss_count(const PolicyLossConfig& config, const torch::Tensor& mask);

PolicyLossResult policy_loss(const PolicyLossConfig& config, const PolicyLossInputs& inputs);

}  // namespace tune::algo

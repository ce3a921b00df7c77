#pragma once
// Preference-optimisation losses as pure functions of per-sequence log-prob sums, so each one can
// be checked against hand-worked values and against TRL on the same numbers.
//
// Notation (per pair b): pi_c, pi_r = sum of log p over the chosen / rejected completion tokens
// under the policy; ref_c, ref_r the same under the reference; n_c, n_r the completion lengths.
//   delta = (pi_c - ref_c) - (pi_r - ref_r)                     the DPO "logits"
//   sigmoid  -(1-e) log s(beta delta) - e log s(-beta delta)     DPO; e = label_smoothing (cDPO)
//   robust   [-(1-e) log s(beta delta) + e log s(-beta delta)] / (1 - 2e)   (Chowdhury et al.)
//   hinge    max(0, 1 - beta delta)                              (SLiC)
//   ipo      (delta_avg - 1/(2 beta))^2, delta_avg with every log-ratio divided by its length
//            (TRL's convention, confirmed with the IPO authors)
//   simpo    -(1-e) log s(beta (pi_c/n_c - pi_r/n_r) - gamma) - e log s(-(...)), no reference
//   nll      + alpha * (-pi_c / n_c): the RPO term keeping the chosen answer likely
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace tune::algo {

enum class PreferenceLossType { sigmoid, robust, hinge, ipo, simpo };
PreferenceLossType parse_preference_loss(const std::string& name);  // throws UsageError
const std::vector<std::string>& preference_loss_names();
bool needs_reference(PreferenceLossType type);  // false for simpo

struct PreferenceLossConfig {
  PreferenceLossType type = PreferenceLossType::sigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // sigmoid (cDPO), robust, simpo
  double simpo_gamma = 0.5;      // simpo target margin (absolute, in reward units)
  double nll_alpha = 0.0;        // weight of the length-normalised NLL on the chosen answer
};

// Per-sequence quantities of one batch of pairs.
struct SequenceLogps {
  torch::Tensor chosen;           // [B] float32, sum of completion-token log-probs
  torch::Tensor rejected;         // [B]
  torch::Tensor chosen_tokens;    // [B] float32, completion lengths (>= 1)
  torch::Tensor rejected_tokens;  // [B]
};

// The individual losses, elementwise over pairs ([B] -> [B]).
torch::Tensor sigmoid_loss(const torch::Tensor& delta, double beta, double label_smoothing);
torch::Tensor robust_loss(const torch::Tensor& delta, double beta, double label_smoothing);
torch::Tensor hinge_loss(const torch::Tensor& delta, double beta);
torch::Tensor ipo_loss(const torch::Tensor& delta_avg, double beta);
torch::Tensor simpo_loss(const torch::Tensor& avg_chosen, const torch::Tensor& avg_rejected, double beta,
                         double gamma, double label_smoothing);
torch::Tensor chosen_nll(const SequenceLogps& policy);  // [B] -pi_c / n_c

struct PreferenceLossResult {
  torch::Tensor losses;            // [B], with the graph of the policy log-probs
  torch::Tensor chosen_rewards;    // [B] detached: beta (pi_c - ref_c); simpo: beta pi_c / n_c
  torch::Tensor rejected_rewards;  // [B] detached
};

// `reference` is ignored (may be empty tensors) for simpo.
PreferenceLossResult preference_loss(const PreferenceLossConfig& config, const SequenceLogps& policy,
                                     const SequenceLogps& reference);

// Sums over the pairs of the metrics users know from TRL (divide by the pair count for means):
// rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/chosen, logps/rejected.
std::map<std::string, double> preference_metric_sums(const PreferenceLossResult& result, const SequenceLogps& policy);

}  // namespace tune::algo

#include "tune/algo/preference_losses.h"

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::algo {
namespace F = torch::nn::functional;

const std::vector<std::string>& preference_loss_names() {
  static const std::vector<std::string> names = {"sigmoid", "robust", "hinge", "ipo", "simpo"};
  return names;
}

PreferenceLossType parse_preference_loss(const std::string& name) {
  if (name == "sigmoid") return PreferenceLossType::sigmoid;
  if (name == "robust") return PreferenceLossType::robust;
  if (name == "hinge") return PreferenceLossType::hinge;
  if (name == "ipo") return PreferenceLossType::ipo;
  if (name == "simpo") return PreferenceLossType::simpo;
  usage_fail("unknown preference loss '", name, "' (", join(preference_loss_names(), ", "), ")");
}

bool needs_reference(PreferenceLossType type) { return type != PreferenceLossType::simpo; }

torch::Tensor sigmoid_loss(const torch::Tensor& delta, double beta, double label_smoothing) {
  torch::Tensor z = beta * delta;
  return -(1.0 - label_smoothing) * F::logsigmoid(z) - label_smoothing * F::logsigmoid(-z);
}

torch::Tensor robust_loss(const torch::Tensor& delta, double beta, double label_smoothing) {
  if (label_smoothing < 0 || label_smoothing >= 0.5)
    usage_fail("config error: dpo.label_smoothing must be in [0, 0.5) for the robust loss, got ", label_smoothing);
  torch::Tensor z = beta * delta;
  return (-(1.0 - label_smoothing) * F::logsigmoid(z) + label_smoothing * F::logsigmoid(-z)) /
         (1.0 - 2.0 * label_smoothing);
}

torch::Tensor hinge_loss(const torch::Tensor& delta, double beta) { return torch::relu(1.0 - beta * delta); }

torch::Tensor ipo_loss(const torch::Tensor& delta_avg, double beta) {
  return (delta_avg - 1.0 / (2.0 * beta)).pow(2);
}

torch::Tensor simpo_loss(const torch::Tensor& avg_chosen, const torch::Tensor& avg_rejected, double beta,
                         double gamma, double label_smoothing) {
  torch::Tensor z = beta * (avg_chosen - avg_rejected) - gamma;
  return -(1.0 - label_smoothing) * F::logsigmoid(z) - label_smoothing * F::logsigmoid(-z);
}

torch::Tensor chosen_nll(const SequenceLogps& policy) { return -policy.chosen / policy.chosen_tokens.clamp_min(1.0); }

PreferenceLossResult preference_loss(const PreferenceLossConfig& c, const SequenceLogps& policy,
                                     const SequenceLogps& reference) {
  PreferenceLossResult out;
  if (c.beta <= 0) usage_fail("config error: dpo.beta must be > 0, got ", c.beta);
  if (c.type == PreferenceLossType::simpo) {
    torch::Tensor avg_c = policy.chosen / policy.chosen_tokens.clamp_min(1.0);    // [B]
    torch::Tensor avg_r = policy.rejected / policy.rejected_tokens.clamp_min(1.0);
    out.losses = simpo_loss(avg_c, avg_r, c.beta, c.simpo_gamma, c.label_smoothing);
    out.chosen_rewards = (c.beta * avg_c).detach();
    out.rejected_rewards = (c.beta * avg_r).detach();
  } else {
    TUNE_CHECK(reference.chosen.defined() && reference.rejected.defined(), "preference loss needs reference log-probs");
    torch::Tensor chosen_ratio = policy.chosen - reference.chosen;        // [B]
    torch::Tensor rejected_ratio = policy.rejected - reference.rejected;  // [B]
    torch::Tensor delta = chosen_ratio - rejected_ratio;
    switch (c.type) {
      case PreferenceLossType::sigmoid: out.losses = sigmoid_loss(delta, c.beta, c.label_smoothing); break;
      case PreferenceLossType::robust: out.losses = robust_loss(delta, c.beta, c.label_smoothing); break;
      case PreferenceLossType::hinge: out.losses = hinge_loss(delta, c.beta); break;
      case PreferenceLossType::ipo: {
        torch::Tensor avg = chosen_ratio / policy.chosen_tokens.clamp_min(1.0) -
                            rejected_ratio / policy.rejected_tokens.clamp_min(1.0);
        out.losses = ipo_loss(avg, c.beta);
        break;
      }
      case PreferenceLossType::simpo: break;  // handled above
    }
    out.chosen_rewards = (c.beta * chosen_ratio).detach();
    out.rejected_rewards = (c.beta * rejected_ratio).detach();
  }
  if (c.nll_alpha > 0) out.losses = out.losses + c.nll_alpha * chosen_nll(policy);
  return out;
}

std::map<std::string, double> preference_metric_sums(const PreferenceLossResult& r, const SequenceLogps& policy) {
  auto sum = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64).sum().item<double>(); };
  return {{"rewards/chosen", sum(r.chosen_rewards)},
          {"rewards/rejected", sum(r.rejected_rewards)},
          {"rewards/margins", sum(r.chosen_rewards - r.rejected_rewards)},
          {"rewards/accuracies", sum((r.chosen_rewards > r.rejected_rewards).to(torch::kFloat64))},
          {"logps/chosen", sum(policy.chosen)},
          {"logps/rejected", sum(policy.rejected)}};
}

}  // namespace tune::algo

#pragma once
// Per-token KL estimators between the policy and the reference on the sampled tokens
// (Schulman, "Approximating KL divergence"). With d = ref_logp - logp = log(pi_ref / pi):
//   k1 = -d                 (unbiased, high variance, can be negative; TRL/OpenRLHF reward KL)
//   k2 = d^2 / 2            (biased, low variance)
//   k3 = exp(d) - 1 - d     (unbiased, non-negative, low variance; GRPO / verl KL loss)
#include <torch/torch.h>

#include <string_view>

namespace tune::ops {

enum class KlKind { k1, k2, k3 };

// "k1" | "k2" | "k3" (also "low_var_kl" for k3 and "mse" for k2, as verl names them); UsageError otherwise.
KlKind parse_kl_kind(std::string_view name);
std::string_view kl_kind_name(KlKind kind);

// logp, ref_logp: [B, T] float; mask: [B, T]. Returns [B, T] in logp's dtype, 0 where masked,
// differentiable wrt logp (and ref_logp).
torch::Tensor kl_penalty(const torch::Tensor& logp, const torch::Tensor& ref_logp, const torch::Tensor& mask,
                         KlKind kind);

}  // namespace tune::ops

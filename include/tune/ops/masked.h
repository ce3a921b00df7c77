#pragma once
// Reductions over the valid positions of a [B, T] tensor (mask: bool, integer or float 0/1 of the
// same shape). Masked-out positions never contribute, whatever they hold (nan and inf included).
#include <torch/torch.h>

#include <optional>

namespace tune::ops {

// Sum of x where mask is set: a scalar, or reduced along `dim`.
torch::Tensor masked_sum(const torch::Tensor& x, const torch::Tensor& mask, std::optional<int64_t> dim = std::nullopt);
// Mean over the valid positions; 0 (not nan) where there are none.
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask, std::optional<int64_t> dim = std::nullopt);
// Variance over all valid positions, unbiased (n - 1) like TRL's masked_var; 0 when fewer than 2.
torch::Tensor masked_var(const torch::Tensor& x, const torch::Tensor& mask);
// (x - mean) / sqrt(var + eps) over all valid positions, mean added back when !shift_mean
// (TRL's masked_whiten). Masked-out positions are 0. Fewer than 2 valid positions: all zeros.
torch::Tensor masked_whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean = true,
                            double eps = 1e-8);

}  // namespace tune::ops

#pragma once
// Rotary position embedding, Hugging Face convention: pairs (i, i + hd/2) rotate together
// (rotate_half), angles computed in fp32.
#include <torch/torch.h>

#include "tune/model/config.h"

namespace tune::model {

// Inverse frequencies [hd/2] (fp32) after default / linear / llama3 scaling.
torch::Tensor rope_inv_freq(const ModelConfig& config);

// cos, sin [B, 1, T, hd] in `dtype` for integer positions [B, T].
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& positions,
                                                     torch::ScalarType dtype);

// x [B, heads, T, hd] rotated by cos/sin [B, 1, T, hd].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace tune::model

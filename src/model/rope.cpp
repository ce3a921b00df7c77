#include "model/rope.h"

#include <cmath>
#include <numbers>

namespace tune::model {

torch::Tensor rope_inv_freq(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  auto exponent = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  auto inv_freq = 1.0 / torch::pow(config.rope_theta, exponent);  // [hd/2] fp32
  const RopeScaling& s = config.rope_scaling;
  if (s.type == "linear") return inv_freq / s.factor;
  if (s.type != "llama3") return inv_freq;
  // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between
  // interpolated by where the wavelength sits relative to the original context.
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_wavelen = old_len / s.low_freq_factor;
  const double high_wavelen = old_len / s.high_freq_factor;
  auto wavelen = 2.0 * std::numbers::pi / inv_freq;
  auto scaled = torch::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
  auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  auto medium = wavelen.ge(high_wavelen).logical_and(wavelen.le(low_wavelen));
  return torch::where(medium, smoothed, scaled);
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& positions,
                                                     torch::ScalarType dtype) {
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(positions.device());  // [B, T, hd/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);                                       // [B, 1, T, hd]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace tune::model

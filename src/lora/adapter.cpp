#include "tune/lora/adapter.h"

#include <cmath>

#include "tune/core/error.h"

namespace tune::lora {

LoraAdapter::LoraAdapter(int64_t in_features, int64_t out_features, int64_t r, double scale,
                         double dropout, std::string_view init, torch::Device device)
    : scale_(scale), dropout_(dropout) {
  TUNE_CHECK(r > 0 && in_features > 0 && out_features > 0, "LoRA adapter needs positive sizes, got r=", r,
             " in=", in_features, " out=", out_features);
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  torch::NoGradGuard no_grad;
  A_ = torch::empty({r, in_features}, opts);
  if (init == "default") {
    // kaiming_uniform(a=sqrt 5) on an [r, in] weight: gain sqrt(2/(1+5)), bound gain*sqrt(3/in) = 1/sqrt(in).
    torch::nn::init::kaiming_uniform_(A_, std::sqrt(5.0));
  } else if (init == "gaussian") {
    torch::nn::init::normal_(A_, 0.0, 1.0 / static_cast<double>(r));
  } else if (init == "none") {
    A_.zero_();  // the caller assigns loaded values
  } else {
    usage_fail("unknown LoRA init '", init, "' (expected default or gaussian)");
  }
  B_ = torch::zeros({out_features, r}, opts);
  A_.set_requires_grad(true);
  B_.set_requires_grad(true);
}

bool LoraAdapter::training() const {
  auto host = host_.lock();
  return host && host->is_training();
}

torch::Tensor LoraAdapter::forward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  auto dtype = x.scalar_type();
  auto input = (dropout_ > 0.0 && training()) ? torch::dropout(x, dropout_, /*train=*/true) : x;
  auto a = A_.to(dtype);                  // [r, in]
  auto b = B_.to(dtype);                  // [out, r]
  auto low = F::linear(input, a);         // [..., r]
  return F::linear(low, b).mul(scale_);   // [..., out]
}

torch::Tensor LoraAdapter::delta_weight() const {
  torch::NoGradGuard no_grad;
  return torch::matmul(B_, A_).mul(scale_);  // [out, in]
}

void LoraAdapter::assign(const torch::Tensor& a, const torch::Tensor& b, std::string_view what) {
  TUNE_CHECK(a.dim() == 2 && a.sizes() == A_.sizes(), what, ": lora_A has shape ", a.sizes(), ", expected ",
             A_.sizes(), " [r, in_features]");
  TUNE_CHECK(b.dim() == 2 && b.sizes() == B_.sizes(), what, ": lora_B has shape ", b.sizes(), ", expected ",
             B_.sizes(), " [out_features, r]");
  torch::NoGradGuard no_grad;
  A_.copy_(a.to(A_.device(), torch::kFloat32));
  B_.copy_(b.to(B_.device(), torch::kFloat32));
}

}  // namespace tune::lora

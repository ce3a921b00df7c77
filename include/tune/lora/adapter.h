#pragma once
// One LoRA adapter in a projection's adapter slot: delta = scale * B (A (dropout x)).
//
// Precision: A and B are float32 "master" tensors whatever the base dtype; with a bf16 base they
// are cast to x's dtype inside forward (autograd carries the gradient back to the fp32 masters),
// so the delta is computed and returned in x's dtype while the optimizer updates fp32 values.
// PEFT instead casts x up to the adapter dtype; at fp32 the two are the same computation.
#include <torch/torch.h>

#include <memory>
#include <string_view>

#include "tune/model/linear.h"

namespace tune::lora {

class LoraAdapter : public model::Adapter {
 public:
  // A [r, in] and B [out, r], float32 on `device`, B zero, A per `init` ("default": PEFT's
  // kaiming_uniform(a=sqrt 5), i.e. U(+-1/sqrt(in)); "gaussian": normal, std 1/r; "none": zeros,
  // drawing nothing from the generator, for adapters whose values are loaded). Trainable.
  LoraAdapter(int64_t in_features, int64_t out_features, int64_t r, double scale, double dropout,
              std::string_view init, torch::Device device = torch::kCPU);

  // x [..., in] -> [..., out] in x's dtype. Dropout applies while the host projection (see
  // set_host) is in training mode.
  torch::Tensor forward(const torch::Tensor& x) override;

  // The module whose train()/eval() state switches dropout (the Linear this adapter sits in).
  // Without one, dropout is off.
  void set_host(std::weak_ptr<torch::nn::Module> host) { host_ = std::move(host); }

  torch::Tensor& lora_A() { return A_; }  // [r, in] float32
  torch::Tensor& lora_B() { return B_; }  // [out, r] float32
  const torch::Tensor& lora_A() const { return A_; }
  const torch::Tensor& lora_B() const { return B_; }
  int64_t rank() const { return A_.size(0); }
  double scale() const { return scale_; }
  double dropout() const { return dropout_; }

  // scale * B A as [out, in] float32, detached: what merging adds to the base weight.
  torch::Tensor delta_weight() const;
  // Replaces A and B (copies, converted to float32), checking their shapes; `what` names the
  // source in errors.
  void assign(const torch::Tensor& a, const torch::Tensor& b, std::string_view what);

 private:
  bool training() const;

  torch::Tensor A_;  // [r, in]
  torch::Tensor B_;  // [out, r]
  double scale_;
  double dropout_;
  std::weak_ptr<torch::nn::Module> host_;
};

}  // namespace tune::lora

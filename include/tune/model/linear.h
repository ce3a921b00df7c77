#pragma once
// The one linear layer every projection of the decoder goes through, with a slot for an adapter
// (LoRA fills it). Base weights are never modified by an adapter.
#include <torch/torch.h>

#include <memory>

namespace tune::model {

// Something that adds a learned delta to a projection's output: y = W x + b + adapter(x).
class Adapter {
 public:
  virtual ~Adapter() = default;
  // x: [..., in_features] -> delta [..., out_features] in x's dtype.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

// While alive on this thread, every Linear ignores its adapter: the frozen base model (the
// reference model of DPO/PPO) without a second copy of the weights. Nests.
class AdaptersDisabled {
 public:
  AdaptersDisabled();
  ~AdaptersDisabled();
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;
  static bool active();  // true inside at least one guard on this thread

 private:
  bool previous_;
};

// Sets this thread's adapter mode to `disabled` for its lifetime (true = as under AdaptersDisabled),
// then restores the previous one: replays a captured mode on another thread (checkpoint recompute).
class AdapterModeGuard {
 public:
  explicit AdapterModeGuard(bool disabled);
  ~AdapterModeGuard();
  AdapterModeGuard(const AdapterModeGuard&) = delete;
  AdapterModeGuard& operator=(const AdapterModeGuard&) = delete;

 private:
  bool previous_;
};

class Linear : public torch::nn::Module {
 public:
  // weight [out, in] (+ bias [out]) registered as parameters "weight"/"bias", zero-initialised.
  Linear(int64_t in_features, int64_t out_features, bool bias, torch::TensorOptions options = {});
  // A projection that reuses a tensor owned elsewhere (the tied lm_head shares the embedding):
  // nothing is registered, so parameters are not listed twice.
  static std::shared_ptr<Linear> shared(torch::Tensor weight);

  torch::Tensor forward(const torch::Tensor& x);  // [..., in] -> [..., out]

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  torch::Tensor& weight() { return weight_; }
  torch::Tensor& bias() { return bias_; }  // undefined when the projection has none

  void set_adapter(std::shared_ptr<Adapter> adapter) { adapter_ = std::move(adapter); }
  const std::shared_ptr<Adapter>& adapter() const { return adapter_; }

 private:
  Linear() = default;
  int64_t in_features_ = 0;
  int64_t out_features_ = 0;
  torch::Tensor weight_;  // [out, in]
  torch::Tensor bias_;    // [out] or undefined
  std::shared_ptr<Adapter> adapter_;
};

}  // namespace tune::model

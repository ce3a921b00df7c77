#include "tune/model/linear.h"

namespace tune::model {
namespace {
thread_local bool adapters_disabled = false;
}

AdaptersDisabled::AdaptersDisabled() : previous_(adapters_disabled) { adapters_disabled = true; }
AdaptersDisabled::~AdaptersDisabled() { adapters_disabled = previous_; }
bool AdaptersDisabled::active() { return adapters_disabled; }
AdapterModeGuard::AdapterModeGuard(bool disabled) : previous_(adapters_disabled) { adapters_disabled = disabled; }
AdapterModeGuard::~AdapterModeGuard() { adapters_disabled = previous_; }

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, torch::TensorOptions options)
    : in_features_(in_features), out_features_(out_features) {
  weight_ = register_parameter("weight", torch::zeros({out_features, in_features}, options));
  if (bias) bias_ = register_parameter("bias", torch::zeros({out_features}, options));
}

std::shared_ptr<Linear> Linear::shared(torch::Tensor weight) {
  std::shared_ptr<Linear> l(new Linear());
  l->out_features_ = weight.size(0);
  l->in_features_ = weight.size(1);
  l->weight_ = std::move(weight);
  return l;
}

torch::Tensor Linear::forward(const torch::Tensor& x) {
  auto y = torch::nn::functional::linear(x, weight_, bias_);
  if (adapter_ && !adapters_disabled) y = y + adapter_->forward(x);
  return y;
}

}  // namespace tune::model

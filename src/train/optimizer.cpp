#include "tune/train/optimizer.h"

#include <algorithm>
#include <cctype>

#include "tune/core/error.h"

namespace tune::train {

NamedParameters named_parameters_of(const torch::nn::Module& module) {
  NamedParameters out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

NamedParameters trainable_only(const NamedParameters& params) {
  NamedParameters out;
  for (const auto& p : params)
    if (p.second.requires_grad()) out.push_back(p);
  return out;
}

std::vector<torch::Tensor> parameter_tensors(const NamedParameters& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.second);
  return out;
}

bool is_no_decay_parameter(std::string_view name) {
  if (name.size() >= 5 && name.substr(name.size() - 5) == ".bias") return true;
  if (name == "bias") return true;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("norm") != std::string::npos;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParameters& params, const AdamWConfig& config) {
  TUNE_CHECK(config.lr >= 0 && config.weight_decay >= 0 && config.eps > 0, "AdamW: invalid settings lr=", config.lr,
             " weight_decay=", config.weight_decay, " eps=", config.eps);
  TUNE_CHECK(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1,
             "AdamW: betas must be in [0, 1), got ", config.beta1, ", ", config.beta2);
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, tensor] : params) {
    if (!tensor.requires_grad()) continue;
    (is_no_decay_parameter(name) ? no_decay : decay).push_back(tensor);
  }
  TUNE_CHECK(!decay.empty() || !no_decay.empty(), "AdamW: no trainable parameters (none of the ", params.size(),
             " parameters requires grad)");
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.lr)
                                                            .betas({config.beta1, config.beta2})
                                                            .eps(config.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, options(config.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(config.lr)
                                                           .betas({config.beta1, config.beta2})
                                                           .eps(config.eps)
                                                           .weight_decay(config.weight_decay));
}

std::vector<torch::Tensor> optimizer_parameters(const torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> out;
  for (const auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) out.push_back(p);
  return out;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace tune::train

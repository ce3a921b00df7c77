#pragma once
// AdamW over the trainable parameters, in two groups: with weight decay, and without it for biases
// and normalisation weights (decay pulls a norm's scale towards 0, which is not regularisation).
#include <torch/torch.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tune::train {

// (name, tensor) as torch::nn::Module::named_parameters() gives them, HF names ("model.norm.weight").
using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

NamedParameters named_parameters_of(const torch::nn::Module& module);
// Only the parameters with requires_grad (LoRA: the adapters), in the given order.
NamedParameters trainable_only(const NamedParameters& params);
// The tensors alone, in order.
std::vector<torch::Tensor> parameter_tensors(const NamedParameters& params);

// True for names ending in ".bias" or containing "norm" (any case: "input_layernorm", "LayerNorm").
bool is_no_decay_parameter(std::string_view name);

struct AdamWConfig {
  // Defaults as transformers' TrainingArguments (lr aside, which every recipe sets).
  double lr = 1e-5;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// Group 0: decayed parameters; group 1: no-decay ones (weight_decay 0). An empty group is left out,
// so there are 1 or 2 groups. Throws tune::Error when nothing is trainable.
std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParameters& params, const AdamWConfig& config);

// Every parameter in the optimizer's groups, in group order (what clipping and all-reduce use).
std::vector<torch::Tensor> optimizer_parameters(const torch::optim::Optimizer& optimizer);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace tune::train

#pragma once
// Putting LoRA adapters into a model's projections, and the handle to the adapters afterwards.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tune/lora/adapter.h"
#include "tune/lora/config.h"
#include "tune/model/causal_lm.h"

namespace tune::lora {

// One adapted projection.
struct LoraModule {
  std::string name;  // Hugging Face module name, "model.layers.0.self_attn.q_proj"
  std::shared_ptr<model::Linear> linear;
  std::shared_ptr<LoraAdapter> adapter;
};

// The adapters living in a model, in checkpoint order. The model owns them too (through each
// Linear's adapter slot); this handle is what training and saving use.
class LoraSet {
 public:
  LoraSet() = default;
  explicit LoraSet(std::vector<LoraModule> modules) : modules_(std::move(modules)) {}

  const std::vector<LoraModule>& modules() const { return modules_; }
  bool empty() const { return modules_.empty(); }
  const LoraModule* find(std::string_view module_name) const;  // nullptr when not adapted

  // The trainable tensors under their PEFT file keys
  // ("base_model.model.<module>.lora_A.weight" [r, in], then "...lora_B.weight" [out, r]).
  std::vector<std::pair<std::string, torch::Tensor>> trainable() const;
  std::vector<torch::Tensor> parameters() const;  // the same tensors, for an optimizer
  int64_t num_trainable() const;                  // total elements
  // The short names of the adapted modules' last component, sorted ("q_proj", "v_proj").
  std::vector<std::string> target_leaf_names() const;

  // Empties every adapter slot this set filled (the model becomes the plain base again).
  void remove_from_model();

 private:
  std::vector<LoraModule> modules_;
};

// PEFT's key for a module's tensor: "base_model.model." + module + ".lora_A.weight".
std::string peft_key(std::string_view module_name, char which /* 'A' or 'B' */);

// Adds a fresh adapter (config.r, config.scale(), config.init) to every projection of `model`
// that config.targets and config.layers_to_transform select, and freezes every base parameter
// (requires_grad false). Adapters are float32 on the base weights' device. Throws
// tune::UsageError when a target entry matches no projection (naming it) or the model already
// has adapters. Random init draws from torch's default generator (seed it for reproducibility).
LoraSet inject_lora(model::CausalLM& model, const LoraConfig& config);

// Sets requires_grad false on every base parameter of `model`.
void freeze_base(model::CausalLM& model);

}  // namespace tune::lora

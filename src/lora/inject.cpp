#include "tune/lora/inject.h"

#include <algorithm>
#include <set>

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::lora {
namespace {

std::string leaf(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// Names a target entry that selects nothing, with a hint at the nearest projection name.
[[noreturn]] void unmatched_target(const std::string& entry, const std::vector<model::Projection>& projections) {
  std::vector<std::string> leaves;
  for (const auto& p : projections) leaves.push_back(leaf(p.name));
  std::string hint = closest_match(entry, leaves);
  usage_fail("config error: lora.targets entry '", entry, "' matches no projection of the model",
             hint.empty() ? std::string(" (names are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head)")
                          : str(" (did you mean '", hint, "'?)"));
}

}  // namespace

const LoraModule* LoraSet::find(std::string_view module_name) const {
  for (const auto& m : modules_)
    if (m.name == module_name) return &m;
  return nullptr;
}

std::string peft_key(std::string_view module_name, char which) {
  return str("base_model.model.", module_name, ".lora_", which, ".weight");
}

std::vector<std::pair<std::string, torch::Tensor>> LoraSet::trainable() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& m : modules_) {
    out.emplace_back(peft_key(m.name, 'A'), m.adapter->lora_A());
    out.emplace_back(peft_key(m.name, 'B'), m.adapter->lora_B());
  }
  return out;
}

std::vector<torch::Tensor> LoraSet::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : trainable()) out.push_back(t);
  return out;
}

int64_t LoraSet::num_trainable() const {
  int64_t n = 0;
  for (const auto& m : modules_) n += m.adapter->lora_A().numel() + m.adapter->lora_B().numel();
  return n;
}

std::vector<std::string> LoraSet::target_leaf_names() const {
  std::set<std::string> names;
  for (const auto& m : modules_) names.insert(leaf(m.name));
  return {names.begin(), names.end()};
}

void LoraSet::remove_from_model() {
  for (auto& m : modules_)
    if (m.linear->adapter() == m.adapter) m.linear->set_adapter(nullptr);
}

void freeze_base(model::CausalLM& model) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
}

LoraSet inject_lora(model::CausalLM& model, const LoraConfig& config) {
  config.validate();
  auto projections = model.projections();
  auto layers = config.layers();

  std::set<std::string> used_entries;
  std::vector<LoraModule> modules;
  for (const auto& p : projections) {
    if (!matches_targets(config.targets, p.name)) continue;
    for (const auto& t : config.targets)
      if (matches_targets({t}, p.name)) used_entries.insert(t);
    if (layers) {
      auto idx = layer_index(p.name);
      if (!idx || std::find(layers->begin(), layers->end(), *idx) == layers->end()) continue;
    }
    if (p.linear->adapter())
      usage_fail("projection ", p.name, " already has an adapter (inject LoRA once per model)");
    modules.push_back({p.name, p.linear, nullptr});
  }
  for (const auto& t : config.targets)
    if (!used_entries.count(t)) unmatched_target(t, projections);
  if (layers) {
    for (int64_t l : *layers)
      TUNE_CHECK(l < model.config().num_hidden_layers, "config error: lora.layers_to_transform has layer ", l,
                 " but the model has ", model.config().num_hidden_layers, " layers");
  }
  TUNE_CHECK(!modules.empty(), "LoRA selected no projection (targets ", join(config.targets, ", "), ")");

  freeze_base(model);
  double scale = config.scale();
  for (auto& m : modules) {
    auto device = m.linear->weight().device();
    m.adapter = std::make_shared<LoraAdapter>(m.linear->in_features(), m.linear->out_features(), config.r, scale,
                                              config.dropout, config.init, device);
    m.adapter->set_host(m.linear);
    m.linear->set_adapter(m.adapter);
  }
  return LoraSet(std::move(modules));
}

}  // namespace tune::lora

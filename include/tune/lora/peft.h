#pragma once
// PEFT adapter directories (adapter_config.json + adapter_model.safetensors), read and written
// so that `peft` loads what `tune` saves and the other way round, and merging an adapter into a
// full Hugging Face model directory.
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/lora/config.h"
#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"

namespace tune::lora {

// The LoRA settings of an adapter_config.json that `tune` understands.
struct PeftAdapterConfig {
  int64_t r = 8;
  double alpha = 8.0;  // PEFT's default lora_alpha
  double dropout = 0.0;
  std::vector<std::string> target_modules;  // as listed in the file (the file's order)
  bool use_rslora = false;
  std::map<std::string, int64_t> rank_pattern;  // per-module overrides, PEFT key patterns
  std::map<std::string, double> alpha_pattern;
  std::string base_model_name_or_path;

  // PEFT's get_pattern_key: the first pattern p with module_name fully matching "(.*\.)?(p)".
  int64_t rank_for(const std::string& module_name) const;
  double alpha_for(const std::string& module_name) const;
  double scale_for(const std::string& module_name) const;

  // Parses the JSON of adapter_config.json. Throws tune::Error naming `origin` and the key for
  // what `tune` cannot reproduce (peft_type other than LORA, use_dora true, bias other than none,
  // modules_to_save, fan_in_fan_out, lora_bias, layer_replication, target_parameters, ...).
  static PeftAdapterConfig from_json(const Json& json, const std::string& origin);
};

// The adapter_config.json `tune` writes for `config`, with target_modules the sorted leaf names
// actually adapted.
Json adapter_config_json(const LoraConfig& config, const LoraSet& set, const std::string& base_model_name_or_path);

// Writes adapter_config.json and adapter_model.safetensors (float32 A/B under PEFT keys,
// __metadata__ {"format":"pt"}) into a temporary sibling directory, then renames it to `dir`.
void save_adapter(const LoraSet& set, const LoraConfig& config, const std::filesystem::path& dir,
                  const std::string& base_model_name_or_path = "");

// An adapter directory read into memory (CPU float32 tensors keyed by module name).
struct AdapterFiles {
  PeftAdapterConfig config;
  std::map<std::string, torch::Tensor> lora_A;  // module name -> [r, in]
  std::map<std::string, torch::Tensor> lora_B;  // module name -> [out, r]
};
// Reads `dir` (ours or PEFT's own). Errors name the file and the offending key: unknown tensor
// keys (e.g. lora_embedding_A, lora_magnitude_vector, modules_to_save weights), an A without B,
// ranks that disagree with r / rank_pattern.
AdapterFiles read_adapter(const std::filesystem::path& dir);

// Puts the adapter of `dir` into `model` (checking every shape against the base projection, the
// error naming the key) and freezes the base. The adapters are trainable float32 tensors.
LoraSet load_adapter(model::CausalLM& model, const std::filesystem::path& dir);
LoraSet attach_adapter(model::CausalLM& model, const AdapterFiles& files, const std::string& origin);

// A new model on `device` holding W + scale * B A for every adapted projection (the weight's
// dtype; the sum is formed in float32 and rounded once) and copies of all other parameters, with
// no adapters. `model` and `set` are not modified, so training can go on.
std::shared_ptr<model::CausalLM> merged_copy(model::CausalLM& model, const LoraSet& set,
                                             torch::Device device = torch::kCPU);

// Saves merged_copy(model, set) (built on the CPU) as a full Hugging Face model directory; tokenizer and generation
// files are copied from `base_dir` when given.
void save_merged(model::CausalLM& model, const LoraSet& set, const std::filesystem::path& out_dir,
                 const std::optional<std::filesystem::path>& base_dir = std::nullopt);

// `tune merge`: base model dir + adapter dir -> full model dir (base dtype kept).
void merge_adapter_to_dir(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                          const std::filesystem::path& out_dir);

}  // namespace tune::lora

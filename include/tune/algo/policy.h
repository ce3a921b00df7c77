#pragma once
// The network an algorithm trains: a Hugging Face model loaded on its device and dtype, with LoRA
// adapters injected (method "lora") or every parameter trainable (method "full"), and its export
// in the layout Hugging Face / PEFT / vLLM load.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tune/algo/sections.h"
#include "tune/lora/config.h"
#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"
#include "tune/train/optimizer.h"

namespace tune::algo {

torch::Device resolve_device(const std::string& name);
torch::ScalarType resolve_dtype(const std::string& name, const torch::Device& device);
void set_threads(int64_t threads);

struct Policy {
  std::shared_ptr<model::CausalLM> model;
  lora::LoraSet lora;      // empty under full fine-tuning
  train::NamedParameters trainable;
  std::filesystem::path base_dir;
  bool use_lora() const { return !lora.empty(); }
};

// method: "lora" | "full".
Policy load_policy(const ModelSection& section, const std::string& method, const lora::LoraConfig& lora_config);

// Writes `dir` (atomically): the full model in HF layout, or the PEFT adapter; tokenizer files of
// the base are copied beside either so the directory is self-contained for generation.
void export_policy(Policy& policy, const lora::LoraConfig& lora_config, const std::filesystem::path& dir);

// Copies tokenizer.json / tokenizer.model / tokenizer_config.json / special_tokens_map.json /
// generation_config.json / chat_template.jinja when present.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace tune::algo

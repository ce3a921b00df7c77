#pragma once
// Hugging Face model directories: config.json + model.safetensors (or shards with
// model.safetensors.index.json), read and written; random initialisation from a seed.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "tune/model/causal_lm.h"

namespace tune::model {

// config.json + weights -> a model in `dtype` on `device`. F32/BF16/F16 files are converted.
// Every expected tensor must be present with the right shape (tune::Error names tensor and file);
// unknown extra tensors are logged as a warning; a tied model needs no lm_head.weight.
std::shared_ptr<CausalLM> load_pretrained(const std::filesystem::path& dir, torch::ScalarType dtype = torch::kFloat32,
                                          torch::Device device = torch::kCPU);
// Copies the weights of `dir` into an existing model (same config shapes).
void load_weights(CausalLM& model, const std::filesystem::path& dir);

struct SaveOptions {
  uint64_t max_shard_bytes = 5'000'000'000;  // above this, model-0000i-of-0000N.safetensors + index
  std::optional<torch::ScalarType> dtype;     // default: the parameters' dtype
  // Files of this directory other than config.json and weights (tokenizer files,
  // generation_config.json, chat template) are copied into the saved directory.
  std::optional<std::filesystem::path> copy_files_from;
};

// Writes config.json and the weights (HF names, __metadata__ {"format":"pt"}; lm_head.weight only
// when untied) into a temporary sibling directory, then renames it over `dir`.
void save_pretrained(CausalLM& model, const std::filesystem::path& dir, const SaveOptions& options = {});

// Weights ~ N(0, initializer_range), biases 0, norm weights 1, drawn on the CPU from `seed`
// (the same values whatever the device or dtype).
void init_random(CausalLM& model, uint64_t seed);

}  // namespace tune::model

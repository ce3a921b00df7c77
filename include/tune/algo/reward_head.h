#pragma once
// A reward model: the decoder's final hidden state at the last non-padding token, times a scalar
// head score.weight [1, H] (no bias) -- Hugging Face's *ForSequenceClassification with one label.
//
// Saved layouts (both directly loadable by transformers / PEFT; see docs/rm.md):
//   full:  config.json (architectures [<Arch>ForSequenceClassification], id2label {0: LABEL_0},
//          pad_token_id) + model.safetensors (model.* and score.weight, no lm_head) + tokenizer files
//   lora:  a PEFT adapter with task_type SEQ_CLS and modules_to_save [score]:
//          adapter_model.safetensors holds the LoRA A/B and base_model.model.score.weight; the
//          base model is adapter_config.json's base_model_name_or_path + tokenizer files
//   both:  reward_stats.json {mean, std, count, pad_token_id, base_model, ...} for normalising
//          rewards (PPO) as (r - mean) / std.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tune/core/json.h"
#include "tune/data/collate.h"
#include "tune/lora/config.h"
#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"

namespace tune::algo {

// Index of the last real token per row of a right-padded batch: [B, T] int64 mask -> [B] int64.
torch::Tensor last_token_index(const torch::Tensor& attention_mask);

// Rewards of every row of `batch`: [B] float32. `score` is [1, H] (float32, trainable or not).
torch::Tensor sequence_rewards(model::CausalLM& model, const torch::Tensor& score, const data::Batch& batch);

// A fresh head ~ N(0, initializer_range), as transformers initialises it, drawn from `seed`.
torch::Tensor init_score_head(const model::CausalLM& model, uint64_t seed, const torch::Device& device);

// "LlamaForCausalLM" -> "LlamaForSequenceClassification".
std::string sequence_classification_class(const model::ModelConfig& config);

struct RewardModelFiles {
  std::filesystem::path base_dir;   // the base model the run started from (tokenizer files, LoRA base)
  int32_t pad_id = 0;
  Json stats = Json::object();      // reward statistics (reward_stats.json)
};

// Writes `dir` atomically in the full layout (`lora` empty) or the PEFT layout.
void save_reward_model(model::CausalLM& model, const lora::LoraSet& lora, const lora::LoraConfig& lora_config,
                       const torch::Tensor& score, const RewardModelFiles& files, const std::filesystem::path& dir);

struct LoadedRewardModel {
  std::shared_ptr<model::CausalLM> model;
  lora::LoraSet lora;
  torch::Tensor score;                // [1, H] float32 on the model's device
  Json stats = Json::object();        // reward_stats.json, {} when absent
  std::filesystem::path tokenizer_dir;
};

// Either layout. `base_override` replaces a LoRA adapter's base_model_name_or_path. `onto`: a LoRA
// reward model's adapters go onto this already loaded copy of its base (whose adapter slots must be
// empty) instead of a fresh one; the caller has checked it is the same base (ppo's shared base).
LoadedRewardModel load_reward_model(const std::filesystem::path& dir, torch::ScalarType dtype, torch::Device device,
                                    const std::string& base_override = "",
                                    std::shared_ptr<model::CausalLM> onto = nullptr);

}  // namespace tune::algo

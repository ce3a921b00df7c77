#pragma once
// PPO's critic: a scalar value head [1, H] over a decoder's final hidden states, read at every
// position: the value of the state before token t is head . h_{t-1}, aligned with the labels as
// the log-probs are (label_logprobs: column t is log p(token t | < t)). It is the reward model's
// architecture applied per token, so it starts from a `tune rm` output (InstructGPT) or from the
// policy's weights with a fresh head, and it is saved in the reward-model layout (docs/rm.md).
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tune/algo/ppo.h"
#include "tune/algo/sections.h"
#include "tune/algo/shared_base.h"
#include "tune/data/collate.h"
#include "tune/lora/config.h"
#include "tune/lora/inject.h"
#include "tune/lora/roles.h"
#include "tune/model/causal_lm.h"
#include "tune/train/optimizer.h"

namespace tune::algo {

struct Critic {
  std::shared_ptr<model::CausalLM> model;
  lora::LoraSet lora;            // the adapters trained (method lora), empty under full training
  lora::LoraConfig lora_config;  // what the adapters are, for saving
  torch::Tensor head;            // [1, H] float32, trainable
  train::NamedParameters trainable;  // "critic.<name>" (PEFT keys under LoRA) and "critic.score.weight"
  std::filesystem::path base_dir;    // the weights' origin: tokenizer files, LoRA base
  std::string source;                // for the log: "reward model runs/rm/final (full)", "the policy's weights"
  int32_t pad_id = 0;
  const lora::AdapterRoles* roles = nullptr;  // a shared base: its adapters are role "critic" there

  // While alive, the shared base runs the critic's adapters (nothing without a shared base). Hold it
  // over a step's forward and backward (a recompute under gradient checkpointing needs it too).
  std::optional<lora::AdapterRoles::Use> use() const;
};

// The directory the critic starts from under critic.init reward_model: critic.path, else the first
// kind: model reward term's path; "" when there is none (a usage error at load).
std::string critic_reward_model_path(const PpoConfig& config);

// Loads the critic of `config.critic` on `device` / `dtype`. The reward-model start checks that its
// vocabulary matches the policy's (the critic reads the policy's token ids) and, when both have a
// tokenizer.json, that the files are identical. With `shared` (plan_shared_base said so) its
// adapters go onto the shared base as role "critic" instead of onto a model of its own.
Critic load_critic(const PpoConfig& config, const torch::Device& device, torch::ScalarType dtype, int32_t pad_id,
                   SharedBase* shared = nullptr);

// Values [B, T] float32, label-aligned: column 0 is 0, column t = head . hidden[t - 1]. With the
// graph (training) or under NoGradGuard (old values).
torch::Tensor critic_values(Critic& critic, const data::Batch& batch);

// Writes `dir` atomically in the reward-model layout (full or PEFT SEQ_CLS adapter with score).
void save_critic(Critic& critic, const std::filesystem::path& dir);

}  // namespace tune::algo

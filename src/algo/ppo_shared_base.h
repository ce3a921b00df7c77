#pragma once
// Whether PPO's roles share one copy of the base model: the policy under LoRA, the critic a LoRA
// adapter (a LoRA reward model's, or critic.method lora from the policy's weights) and every reward
// model a LoRA adapter, all over the policy's base (the same directory, or the same config.json and
// the same weight files by SHA-256) on the same device and dtype. Decided before anything loads,
// so the dry-run plan states it.
#include <string>
#include <vector>

#include "tune/algo/ppo.h"

namespace tune::algo {

struct SharedBasePlan {
  bool share = false;
  std::vector<std::string> roles;  // when shared: "policy", "critic", "reward model 'x'", ...
  std::string why_not;             // when not: the first reason
};

// Throws tune::UsageError when ppo.shared_base is on and the roles cannot share.
SharedBasePlan plan_shared_base(const PpoConfig& config, bool use_critic);

// The same base model: the same directory, or equal config.json and identical *.safetensors files.
bool same_base_model(const std::string& a, const std::string& b);

}  // namespace tune::algo

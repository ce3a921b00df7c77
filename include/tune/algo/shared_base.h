#pragma once
// One copy of a base model for several LoRA roles (PPO's policy, critic and reward models): the
// model and the adapter switchboard the roles' loaders put their adapters on (lora/roles.h).
#include <memory>

#include "tune/lora/roles.h"
#include "tune/model/causal_lm.h"

namespace tune::algo {

struct SharedBase {
  std::shared_ptr<model::CausalLM> model;  // the policy's, loaded once
  lora::AdapterRoles roles;                // "policy", "critic", "reward:<term>"
};

}  // namespace tune::algo

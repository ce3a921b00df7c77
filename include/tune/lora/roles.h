#pragma once
// Several roles' LoRA adapters over one copy of a base model: PPO's policy, critic and reward
// model, when all three are adapters over the same base, need its weights once. Every adapted
// projection holds one adapter per role and runs the active role's; the base weights are shared.
//
//   AdapterRoles roles;
//   roles.add("policy", policy_set);   // takes the adapters a LoraSet put into the slots
//   roles.add("critic", critic_set);
//   roles.install();                   // one switch per projection; "policy" (the first) active
//   { auto as = roles.use("critic"); critic_forward_and_backward(); }
//
// The active role is one value shared by every thread (a recompute under gradient checkpointing
// runs the role that was active at the forward): hold `use` over a role's whole forward and backward.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tune/lora/inject.h"

namespace tune::lora {

class AdapterRoles {
 public:
  // Takes the adapters `set` filled the model's slots with as role `name` and empties those slots
  // (the set keeps its tensors, for training and saving). Throws before install() only.
  void add(const std::string& name, LoraSet& set);

  // Puts one switch per adapted projection into its slot; the first role added is active. Throws
  // tune::UsageError when the roles adapt different projections (naming one).
  void install();

  class Use {
   public:
    Use(std::shared_ptr<int> active, int role);
    ~Use();
    Use(Use&& other) noexcept;
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    Use& operator=(Use&&) = delete;

   private:
    std::shared_ptr<int> active_;
    int previous_ = 0;
  };
  // Role `name` is active until the returned scope ends (then the previous one again).
  [[nodiscard]] Use use(const std::string& name) const;

  const std::vector<std::string>& names() const { return names_; }
  bool installed() const { return installed_; }
  std::string active() const { return names_.at(static_cast<size_t>(*active_)); }

 private:
  struct Slot {
    std::shared_ptr<model::Linear> linear;
    std::vector<std::shared_ptr<model::Adapter>> by_role;  // index = role
  };
  std::vector<std::string> names_;
  std::map<std::string, Slot> slots_;  // by module name
  std::shared_ptr<int> active_ = std::make_shared<int>(0);
  bool installed_ = false;
};

}  // namespace tune::lora

#include "tune/lora/roles.h"

#include <algorithm>

#include "tune/core/error.h"

namespace tune::lora {
namespace {

// The slot's adapter: the active role's one.
class AdapterSwitch : public model::Adapter {
 public:
  AdapterSwitch(std::vector<std::shared_ptr<model::Adapter>> by_role, std::shared_ptr<const int> active)
      : by_role_(std::move(by_role)), active_(std::move(active)) {}
  torch::Tensor forward(const torch::Tensor& x) override { return by_role_[static_cast<size_t>(*active_)]->forward(x); }

 private:
  std::vector<std::shared_ptr<model::Adapter>> by_role_;
  std::shared_ptr<const int> active_;
};

}  // namespace

void AdapterRoles::add(const std::string& name, LoraSet& set) {
  TUNE_CHECK(!installed_, "adapter roles: '", name, "' added after install()");
  TUNE_CHECK(std::find(names_.begin(), names_.end(), name) == names_.end(), "adapter roles: '", name, "' added twice");
  TUNE_CHECK(!set.empty(), "adapter roles: '", name, "' has no adapters");
  const auto role = names_.size();
  names_.push_back(name);
  for (const auto& m : set.modules()) {
    Slot& slot = slots_[m.name];
    if (!slot.linear) slot.linear = m.linear;
    TUNE_CHECK(slot.linear == m.linear, "adapter roles: '", name, "' adapts ", m.name, " of another model");
    slot.by_role.resize(role + 1);
    slot.by_role[role] = m.adapter;
  }
  set.remove_from_model();
}

void AdapterRoles::install() {
  TUNE_CHECK(!installed_, "adapter roles: installed twice");
  TUNE_CHECK(!names_.empty(), "adapter roles: nothing to install");
  for (auto& [module, slot] : slots_) {
    slot.by_role.resize(names_.size());
    for (size_t r = 0; r < names_.size(); ++r)
      if (!slot.by_role[r])
        usage_fail("adapter roles: ", names_[r], " does not adapt ", module, " while ",
                   names_[r == 0 ? 1 : 0], " does: one shared base needs the same LoRA target modules in every role");
  }
  for (auto& [module, slot] : slots_) {
    TUNE_CHECK(!slot.linear->adapter(), "adapter roles: ", module, " already has an adapter");
    slot.linear->set_adapter(std::make_shared<AdapterSwitch>(slot.by_role, active_));
  }
  *active_ = 0;
  installed_ = true;
}

AdapterRoles::Use AdapterRoles::use(const std::string& name) const {
  auto it = std::find(names_.begin(), names_.end(), name);
  TUNE_CHECK(it != names_.end(), "adapter roles: no role '", name, "'");
  return Use(active_, static_cast<int>(it - names_.begin()));
}

AdapterRoles::Use::Use(std::shared_ptr<int> active, int role) : active_(std::move(active)), previous_(*active_) {
  *active_ = role;
}

AdapterRoles::Use::Use(Use&& other) noexcept : active_(std::move(other.active_)), previous_(other.previous_) {}

AdapterRoles::Use::~Use() {
  if (active_) *active_ = previous_;
}

}  // namespace tune::lora

#include "tune/algo/reference.h"

#include "tune/core/error.h"
#include "tune/model/weights.h"

namespace tune::algo {

ReferenceModel::ReferenceModel(Policy& policy, const std::string& model_dir, ReferenceMode mode) : policy_(policy) {
  if (mode == ReferenceMode::none) return;
  if (policy.use_lora()) {
    kind_ = Kind::adapters_off;
    return;
  }
  if (mode == ReferenceMode::initial) {
    kind_ = Kind::policy_now;
    return;
  }
  kind_ = Kind::copy;
  auto options = policy.model->options();
  copy_ = model::load_pretrained(model_dir, options.dtype().toScalarType(), options.device());
  copy_->eval();
  for (auto& p : copy_->parameters()) p.set_requires_grad(false);
}

std::string ReferenceModel::describe() const {
  switch (kind_) {
    case Kind::none: return "none (reference-free)";
    case Kind::adapters_off: return "the base model (adapters disabled)";
    case Kind::copy: return str("a frozen copy of the initial model (", human_bytes(extra_bytes()), ")");
    case Kind::policy_now: return "the initial policy, before any update";
  }
  return "";
}

void ReferenceModel::sync_from_policy(double alpha) {
  if (!copy_) usage_fail("reference refresh needs a frozen copy (method: full with beta > 0)");
  torch::NoGradGuard no_grad;
  auto from = policy_.model->named_parameters();
  for (auto& item : copy_->named_parameters()) {
    const auto* src = from.find(item.key());
    TUNE_CHECK(src, "reference refresh: the policy has no parameter ", item.key());
    item.value().mul_(1.0 - alpha).add_(*src, alpha);
  }
}

uint64_t ReferenceModel::extra_bytes() const {
  if (!copy_) return 0;
  uint64_t bytes = 0;
  for (const auto& p : copy_->parameters()) bytes += static_cast<uint64_t>(p.numel() * p.element_size());
  return bytes;
}

}  // namespace tune::algo

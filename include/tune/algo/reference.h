#pragma once
// The reference policy of DPO, PPO and GRPO: the network log-ratios and KL are measured against.
//   frozen:  under LoRA the base model with its adapters disabled (no second copy of the weights);
//            under full fine-tuning a frozen copy of the initial weights, loaded from model.path.
//   initial: the policy exactly as it is now (adapters disabled under LoRA), for log-probs
//            precomputed before the first update; no copy is made.
//   none:    reference-free losses (SimPO, beta 0): nothing is run.
//
//   ReferenceModel ref(policy, cfg.model.path, ReferenceMode::frozen);
//   torch::Tensor ref_logp = ref.run([&](model::CausalLM& m) { return token_logps(m, batch); });
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "tune/algo/policy.h"
#include "tune/core/error.h"
#include "tune/model/causal_lm.h"
#include "tune/model/linear.h"

namespace tune::algo {

enum class ReferenceMode { none, frozen, initial };

class ReferenceModel {
 public:
  // model_dir: where the initial weights are (model.path), read only for a frozen full copy.
  ReferenceModel(Policy& policy, const std::string& model_dir, ReferenceMode mode);

  bool active() const { return kind_ != Kind::none; }
  bool holds_copy() const { return copy_ != nullptr; }
  // What it is, for the log and the dry-run plan ("the base model (adapters disabled)", ...).
  std::string describe() const;
  // Memory the reference holds beyond the policy (the frozen copy's weights; 0 otherwise).
  uint64_t extra_bytes() const;

  // Full fine-tuning: reference <- alpha * policy + (1 - alpha) * reference (TRL's sync_ref_model;
  // alpha 1 copies). A usage error under LoRA, whose reference is the adapters-off base.
  void sync_from_policy(double alpha);

  // fn(model) evaluated as the reference: no gradients, eval mode (no dropout), adapters disabled
  // or on the frozen copy. The policy's train/eval mode is restored after.
  template <class Fn>
  auto run(Fn&& fn) {
    TUNE_CHECK(active(), "reference model: run() on a reference-free setup");
    torch::NoGradGuard no_grad;
    if (copy_) return fn(*copy_);
    model::AdaptersDisabled off;  // a no-op without adapters
    ModeRestore restore(*policy_.model);
    return fn(*policy_.model);
  }

 private:
  enum class Kind { none, adapters_off, copy, policy_now };
  // Eval mode for the scope, then the previous train/eval mode back.
  struct ModeRestore {
    explicit ModeRestore(model::CausalLM& m) : model(m), was_training(m.is_training()) { m.eval(); }
    ~ModeRestore() { model.train(was_training); }
    model::CausalLM& model;
    bool was_training;
  };
  Kind kind_ = Kind::none;
  Policy& policy_;
  std::shared_ptr<model::CausalLM> copy_;
};

}  // namespace tune::algo

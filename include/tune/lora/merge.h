#pragma once
// Adapters folded into the base weights for a while (a rollout), then the exact unmerged model back.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"

namespace tune::lora {

// While alive, every adapter of `set` is merged into its projection's base weight (W + scale B A,
// summed in float32 and rounded once to W's dtype, as `tune merge` does) and its slot is emptied:
// a forward pass then costs what the base model's costs. Destruction (or restore()) copies the
// saved base weights back, bit for bit, and refills the slots, so training continues on exactly
// the unmerged weights. The saved copies take the adapted weights' memory on their device.
// An lm_head adapter over a tied embedding stays unmerged in its slot (merging it would change the
// embedding too).
class MergedAdapters {
 public:
  MergedAdapters(model::CausalLM& model, const LoraSet& set);
  ~MergedAdapters();
  MergedAdapters(const MergedAdapters&) = delete;
  MergedAdapters& operator=(const MergedAdapters&) = delete;

  void restore();  // idempotent
  int64_t merged_count() const { return static_cast<int64_t>(saved_.size()); }

 private:
  struct Saved {
    std::shared_ptr<model::Linear> linear;
    std::shared_ptr<model::Adapter> adapter;
    torch::Tensor weight;  // the base weight before the merge
  };
  std::vector<Saved> saved_;
};

}  // namespace tune::lora

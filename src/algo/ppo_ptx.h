#pragma once
// PPO's PTX term: SFT records mixed into each policy step as a negative log-likelihood, weighted by
// ptx.coef and averaged over the records' label tokens (InstructGPT's PPO-ptx; OpenRLHF ptx_coef).
// The records a step sees are a function of the policy's step count alone (a seeded permutation,
// walked in order), so a resumed run mixes in exactly what the uninterrupted one would.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tune/algo/ppo.h"
#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"
#include "tune/text/dataset.h"

namespace tune::algo {

class PtxMix {
 public:
  // Loads and tokenizes cfg.ptx.path with the policy's tokenizer and chat template (cfg.data's
  // max_seq_len, truncation and mask); records without label tokens are refused by name.
  explicit PtxMix(const PpoConfig& cfg);

  int64_t records() const { return static_cast<int64_t>(samples_.samples.size()); }
  int64_t per_step() const { return per_step_; }

  // The records of policy step `policy_step`, collated on `device`.
  data::Batch batch(int64_t policy_step, torch::Device device) const;

  // Sum of -log p over the batch's label tokens (with its graph) and how many there are.
  static std::pair<torch::Tensor, double> nll_sum(model::CausalLM& model, const data::Batch& batch);

 private:
  text::TokenizedDataset samples_;
  std::vector<int64_t> order_;  // a seeded permutation of the records
  int64_t per_step_ = 1;
  int32_t pad_id_ = 0;
};

}  // namespace tune::algo

#pragma once
// The PTX term of grpo and ppo: SFT records mixed into each policy step as a negative
// log-likelihood, weighted by ptx.coef and averaged over the records' label tokens (InstructGPT's
// PPO-ptx; OpenRLHF ptx_coef). The records a step sees are a function of the policy's step count
// alone (a seeded permutation, walked in order), so a resumed run mixes in exactly what the
// uninterrupted one would.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tune/algo/policy_loss.h"
#include "tune/algo/sections.h"
#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"
#include "tune/text/dataset.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

class PtxMix {
 public:
  // Loads and tokenizes ptx.path with the policy's tokenizer and chat template (the prompts'
  // max_seq_len, truncation and mask from `prompts`); a record that is not an SFT record is refused
  // by file:line. `rows_per_step`: the completions of one policy step (ptx.share is of those).
  PtxMix(const ModelSection& model, const text::DataConfig& prompts, const PtxSection& ptx, int64_t rows_per_step,
         int64_t seed);

  // The records of policy step `policy_step`, collated on `device`.
  data::Batch batch(int64_t policy_step, torch::Device device) const;

  // Adds the term to one micro-batch's policy loss. It rides on the last micro-batch of the step
  // (`last`); every micro-batch gets the metric loss/ptx (the NLL per PTX token) so their keys agree.
  // The stepper divides every micro-batch's sum by the policy's count, so the NLL sum is scaled by
  // coef x policy_count / PTX tokens. (One process: with several ranks the count here would have to
  // be the global one.)
  void add_to(PolicyLossResult& res, bool last, model::CausalLM& model, int64_t policy_step, double policy_count,
              torch::Device device) const;

 private:
  text::TokenizedDataset samples_;
  std::vector<int64_t> order_;  // a seeded permutation of the records
  int64_t per_step_ = 1;
  int32_t pad_id_ = 0;
  double coef_ = 0.0;
};

}  // namespace tune::algo

#pragma once
// What `tune rm` and `tune dpo` share: preference data tokenized with the model's chat template
// (labels on the completions only), per-sequence log-prob sums of a preference batch, and the
// evaluation section.
#include <vector>

#include "tune/algo/preference_losses.h"
#include "tune/algo/sections.h"
#include "tune/algo/training_text.h"
#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"

namespace tune::algo {

struct PreferenceEvalSection {
  int64_t every = 0;         // optimizer steps between evaluations (0: only at the end)
  int64_t max_pairs = 500;   // held-out pairs evaluated
  int64_t batch_size = 32;   // pairs per forward pass
  template <class V>
  void visit(V& v) {
    v("every", every, "steps between evaluations (0: only at the end)", config::at_least<int64_t>(0));
    v("max_pairs", max_pairs, "held-out pairs evaluated", config::greater_than<int64_t>(0));
    v("batch_size", batch_size, "pairs per evaluation forward pass", config::greater_than<int64_t>(0));
  }
};

// Loads, splits and tokenizes; every sample must be a preference pair (pairs in .train.pairs).
TrainingText load_preference_data(const ModelSection& model, const text::DataConfig& data);

// Sums of label log-probs per sequence of a [2B, T] preference batch, split into chosen / rejected.
SequenceLogps sequence_logps(model::CausalLM& model, const data::PreferenceBatch& batch);
// Completion lengths only (no forward pass).
SequenceLogps completion_lengths(const data::PreferenceBatch& batch);

// Pairs [begin, end) of `pairs` as one batch.
data::PreferenceBatch pair_batch(const std::vector<text::TokenizedPair>& pairs, size_t begin, size_t end,
                                 int32_t pad_id);

}  // namespace tune::algo

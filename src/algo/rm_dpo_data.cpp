#include "tune/algo/rm_dpo_data.h"

#include "tune/algo/logprobs.h"
#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::algo {

TrainingText load_preference_data(const ModelSection& model, const text::DataConfig& data) {
  TrainingText out = load_training_text(model, data, text::SampleKind::preference);
  if (out.train.pairs.empty()) fail("data: no trainable preference pairs after tokenization (", out.train.report().dump(), ")");
  log::info("data: ", out.train.pairs.size(), " train / ", out.eval.pairs.size(), " eval preference pairs",
            out.train.truncated ? str(", ", out.train.truncated, " truncated") : std::string());
  return out;
}

SequenceLogps completion_lengths(const data::PreferenceBatch& batch) {
  const int64_t B = batch.num_pairs;
  torch::Tensor n = (batch.batch.labels != text::kIgnoreIndex).sum(1).to(torch::kFloat32);  // [2B]
  SequenceLogps out;
  out.chosen_tokens = n.narrow(0, 0, B);
  out.rejected_tokens = n.narrow(0, B, B);
  return out;
}

SequenceLogps sequence_logps(model::CausalLM& model, const data::PreferenceBatch& batch) {
  const int64_t B = batch.num_pairs;
  torch::Tensor sums = label_logprobs(model, batch.batch).sum(1);  // [2B, T] -> [2B]
  SequenceLogps out = completion_lengths(batch);
  out.chosen = sums.narrow(0, 0, B);
  out.rejected = sums.narrow(0, B, B);
  return out;
}

data::PreferenceBatch pair_batch(const std::vector<text::TokenizedPair>& pairs, size_t begin, size_t end,
                                 int32_t pad_id) {
  std::vector<const text::TokenizedPair*> ptrs;
  for (size_t i = begin; i < end; ++i) ptrs.push_back(&pairs[i]);
  data::CollateOptions opts;
  opts.pad_id = pad_id;
  return data::collate_pairs(ptrs, opts);
}

}  // namespace tune::algo

#include "algo/ptx.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tune/algo/logprobs.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::algo {

PtxMix::PtxMix(const ModelSection& model, const text::DataConfig& prompts, const PtxSection& ptx,
               int64_t rows_per_step, int64_t seed)
    : coef_(ptx.coef) {
  text::DataConfig data = prompts;  // the prompts' sequence settings (max_seq_len, truncation, mask)
  data.datasets = {text::DatasetConfig{}};
  data.datasets[0].path = ptx.path;
  data.eval_path.clear();
  data.eval_fraction = 0.0;
  data.order = "random";
  data.packing = false;
  data.mix_size = 0;
  TrainingText t = load_training_text(model, data);
  for (const auto& s : t.records.train)
    if (s.kind != text::SampleKind::chat && s.kind != text::SampleKind::text)
      usage_fail("ptx.path: ", s.where, ": expected an SFT record (chat, prompt/completion or text), got a ",
                 text::to_string(s.kind), " record");
  samples_ = std::move(t.train);
  if (samples_.samples.empty())
    usage_fail("ptx.path: ", ptx.path, " has no record with label tokens left (", samples_.dropped_no_labels,
               " without labels after masking, ", samples_.dropped_too_long, " too long for data.max_seq_len ",
               data.max_seq_len, ")");
  pad_id_ = t.pad_id;
  per_step_ = std::max<int64_t>(1, std::llround(ptx.share * static_cast<double>(rows_per_step)));
  order_.resize(samples_.samples.size());
  std::iota(order_.begin(), order_.end(), int64_t{0});
  std::mt19937_64 rng(static_cast<uint64_t>(seed) ^ 0x505458ull);  // "PTX"
  std::shuffle(order_.begin(), order_.end(), rng);
  log::info("ptx: ", samples_.samples.size(), " SFT records from ", ptx.path, ", ", per_step_, " per policy step, coef ", ptx.coef);
}

data::Batch PtxMix::batch(int64_t policy_step, torch::Device device) const {
  std::vector<const text::TokenizedSample*> rows;
  const auto n = static_cast<int64_t>(order_.size());
  for (int64_t j = 0; j < per_step_; ++j)
    rows.push_back(&samples_.samples[static_cast<size_t>(order_[static_cast<size_t>((policy_step * per_step_ + j) % n)])]);
  data::CollateOptions opts;
  opts.pad_id = pad_id_;
  return data::to_device(data::collate(rows, opts), device);
}

void PtxMix::add_to(PolicyLossResult& res, bool last, model::CausalLM& model, int64_t policy_step, double policy_count,
                    torch::Device device) const {
  train::MetricSum shown;
  if (last) {
    data::Batch b = batch(policy_step, device);
    torch::Tensor nll = -label_logprobs(model, b).sum();  // [B, T] 0 off the labels; T = 1: the plain LM
    const auto tokens = static_cast<double>(b.num_label_tokens);
    res.loss_sum = res.loss_sum + nll * (coef_ * policy_count / std::max(1.0, tokens));
    shown = {nll.item<double>(), tokens};
  }
  res.metrics["loss/ptx"] = shown;
}

}  // namespace tune::algo

#include "tune/algo/logprobs.h"

#include "tune/ops/token_logprob.h"

namespace tune::algo {

torch::Tensor label_logprobs(model::CausalLM& model, const data::Batch& batch, double temperature,
                             int64_t keep_logits_bytes) {
  model::ForwardArgs args;
  args.input_ids = batch.input_ids;  // [B, T]
  args.position_ids = batch.position_ids;
  // Right padding needs no mask under causal attention: real tokens never see the pads after them,
  // and the pads' own outputs carry label -100. Packed rows must not attend across samples.
  if (batch.packed) args.sample_ids = batch.sample_ids;
  torch::Tensor hidden = model.forward_hidden(args);  // [B, T, D]
  const int64_t B = hidden.size(0), T = hidden.size(1), D = hidden.size(2);

  // Position t-1 predicts the label of token t.
  torch::Tensor h = hidden.narrow(1, 0, T - 1).reshape({B * (T - 1), D});            // [N, D]
  torch::Tensor labels = batch.labels.narrow(1, 1, T - 1).reshape({B * (T - 1)});     // [N]
  ops::TokenLogprobOptions opts;
  opts.temperature = temperature;
  // Keeping the [N, V] logits for the backward costs N x V x itemsize bytes and saves recomputing
  // the LM-head product there (~12% of a LoRA step on a 100M model, docs/benchmarks.md). Under a
  // budget the logits are kept; above it (long sequences, large vocabularies: 16k tokens x 152k
  // vocabulary is ~5 GB in bf16) the hidden-state form never stores them.
  const int64_t logits_bytes = h.size(0) * model.config().vocab_size * static_cast<int64_t>(h.element_size());
  torch::Tensor logp;
  if (model.lm_head().adapter() || logits_bytes <= keep_logits_bytes) {
    // Through the logits (an adapter on the LM head changes them); the log-softmax is still chunked.
    logp = ops::token_logprob(model.logits(h), labels, opts).logprob;
  } else {
    logp = ops::token_logprob_from_hidden(h, model.lm_head().weight(), labels, opts).logprob;
  }
  torch::Tensor first = torch::zeros({B, 1}, logp.options());
  return torch::cat({first, logp.view({B, T - 1})}, 1);  // [B, T]
}

data::Batch rollout_as_batch(const rollout::RolloutBatch& r) {
  data::Batch b;
  b.input_ids = r.input_ids;  // [N, T]
  b.attention_mask = r.attention_mask;
  b.labels = torch::where(r.completion_mask.to(torch::kBool), r.input_ids, torch::full({}, ops::kIgnoreIndex, r.input_ids.options()));
  b.num_label_tokens = r.stats.completion_tokens;
  b.num_samples = r.size();
  return b;  // position_ids undefined: 0..T-1, what right padding needs
}

torch::Tensor completion_logprobs(model::CausalLM& model, const rollout::RolloutBatch& r, double temperature,
                                  int64_t keep_logits_bytes) {
  torch::Tensor logp = label_logprobs(model, rollout_as_batch(r), temperature, keep_logits_bytes);  // [N, T]
  return r.gather_completion(logp);                                                                 // [N, Tc]
}

}  // namespace tune::algo

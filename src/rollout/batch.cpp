// The output of a rollout: host rows -> right-padded tensors, and the helpers around them.
#include <algorithm>

#include "rollout/assemble.h"
#include "tune/core/error.h"

namespace tune::rollout {

EngineOptions engine_options(const text::Tokenizer& tokenizer, EngineConfig config, const lora::LoraSet* lora) {
  EngineOptions o;
  o.config = std::move(config);
  const auto& special = tokenizer.special();
  for (int32_t id : special.stop_ids) o.eos_ids.push_back(id);  // eos + generation_config.json's list
  if (special.eos && std::find(o.eos_ids.begin(), o.eos_ids.end(), *special.eos) == o.eos_ids.end())
    o.eos_ids.push_back(*special.eos);
  o.pad_id = special.pad ? *special.pad : special.eos ? *special.eos : 0;
  o.tokenizer = &tokenizer;
  o.lora = lora;
  return o;
}

torch::Tensor RolloutBatch::gather_completion(const torch::Tensor& x) const {
  TUNE_CHECK(x.dim() == 2 && x.size(0) == input_ids.size(0), "gather_completion: expected [", input_ids.size(0),
             ", T], got ", x.sizes());
  const int64_t Tc = completion_ids.size(1);
  auto j = torch::arange(Tc, prompt_lengths.options()).unsqueeze(0);                      // [1, Tc]
  auto index = (prompt_lengths.unsqueeze(1) + j).clamp_max(x.size(1) - 1).to(x.device());  // [N, Tc]
  auto values = x.gather(1, index);
  return torch::where(completion_token_mask.to(x.device()).to(torch::kBool), values, torch::zeros({}, values.options()));
}

RolloutBatch assemble_batch(const std::vector<RowPrompt>& prompts, std::vector<RowState>& rows, int64_t group_size,
                            const EngineOptions& options, torch::Device device) {
  const int64_t N = static_cast<int64_t>(rows.size());
  RolloutBatch b;
  b.group_size = group_size;
  int64_t T = 0, Tc = 0;
  for (int64_t r = 0; r < N; ++r) {
    const auto L = static_cast<int64_t>(rows[static_cast<size_t>(r)].tokens.size());
    const auto P = static_cast<int64_t>(prompts[static_cast<size_t>(r)].ids->size());
    T = std::max(T, P + L);
    Tc = std::max(Tc, L);
  }
  const int64_t pad = options.pad_id;
  auto ids = torch::full({N, T}, pad, torch::kInt64);        // [N, T]
  auto attention = torch::zeros({N, T}, torch::kInt64);      // [N, T]
  auto completion = torch::zeros({N, T}, torch::kInt64);     // [N, T]
  auto c_ids = torch::full({N, Tc}, pad, torch::kInt64);     // [N, Tc]
  auto c_mask = torch::zeros({N, Tc}, torch::kInt64);        // [N, Tc]
  auto c_logprobs = torch::zeros({N, Tc}, torch::kFloat32);  // [N, Tc]
  auto p_len = torch::zeros({N}, torch::kInt64), c_len = torch::zeros({N}, torch::kInt64);
  auto p_index = torch::zeros({N}, torch::kInt64);
  auto truncated = torch::zeros({N}, torch::kBool);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto att_a = attention.accessor<int64_t, 2>();
  auto comp_a = completion.accessor<int64_t, 2>();
  auto cid_a = c_ids.accessor<int64_t, 2>();
  auto cm_a = c_mask.accessor<int64_t, 2>();
  auto clp_a = c_logprobs.accessor<float, 2>();
  auto plen_a = p_len.accessor<int64_t, 1>(), clen_a = c_len.accessor<int64_t, 1>();
  auto pidx_a = p_index.accessor<int64_t, 1>();
  auto trunc_a = truncated.accessor<bool, 1>();
  b.samples.resize(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    RowState& row = rows[static_cast<size_t>(r)];
    const RowPrompt& prompt = prompts[static_cast<size_t>(r)];
    const auto& p = *prompt.ids;
    const auto P = static_cast<int64_t>(p.size());
    const auto L = static_cast<int64_t>(row.tokens.size());
    for (int64_t t = 0; t < P; ++t) {
      ids_a[r][t] = p[static_cast<size_t>(t)];
      att_a[r][t] = 1;
    }
    for (int64_t j = 0; j < L; ++j) {
      const int32_t tok = row.tokens[static_cast<size_t>(j)];
      ids_a[r][P + j] = tok;
      att_a[r][P + j] = 1;
      comp_a[r][P + j] = 1;
      cid_a[r][j] = tok;
      cm_a[r][j] = 1;
      clp_a[r][j] = row.logprobs[static_cast<size_t>(j)];
    }
    SampleInfo& info = b.samples[static_cast<size_t>(r)];
    info.prompt_index = prompt.prompt_index;
    info.prompt_length = P;
    info.completion_length = L;
    info.finish = row.done ? row.finish : FinishReason::length;
    info.truncated = !row.done;
    info.prompt_truncated = prompt.cut;
    if (options.tokenizer) info.text = options.tokenizer->decode(row.tokens, /*skip_special_tokens=*/true);
    info.tokens = std::move(row.tokens);
    plen_a[r] = P;
    clen_a[r] = L;
    pidx_a[r] = prompt.prompt_index;
    trunc_a[r] = info.truncated;
  }
  b.input_ids = ids.to(device);
  b.attention_mask = attention.to(device);
  b.completion_mask = completion.to(device);
  b.completion_ids = c_ids.to(device);
  b.completion_token_mask = c_mask.to(device);
  b.logprobs = c_logprobs.to(device);
  b.prompt_lengths = p_len.to(device);
  b.completion_lengths = c_len.to(device);
  b.prompt_index = p_index.to(device);
  b.truncated = truncated.to(device);
  return b;
}

}  // namespace tune::rollout

#include "tune/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <limits>

#include "tune/core/error.h"

namespace tune::model {

std::string_view finish_reason_name(FinishReason r) { return r == FinishReason::stop ? "stop" : "length"; }

namespace {

torch::Generator make_generator(torch::Device device, uint64_t seed) {
  torch::Generator gen;
  if (device.is_cuda()) gen = at::detail::getCUDAHooks().getNewGenerator(device.index());
  else gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  gen.set_current_seed(seed);
  return gen;
}

}  // namespace

torch::Tensor sample_next(const torch::Tensor& logits_in, const torch::Tensor& history, const GenerationConfig& cfg,
                          torch::Generator& generator) {
  auto logits = logits_in.to(torch::kFloat32);  // [B, V]
  const int64_t V = logits.size(1);
  if (cfg.repetition_penalty != 1.0 && history.defined() && history.numel() > 0) {
    // Tokens seen so far: negative scores are multiplied, positive divided (CTRL).
    auto valid = history.ge(0);
    auto seen = torch::zeros_like(logits, torch::kInt32)
                    .scatter_add_(1, history.clamp_min(0), valid.to(torch::kInt32))
                    .gt(0);  // [B, V]
    auto penalised = torch::where(logits.lt(0), logits * cfg.repetition_penalty, logits / cfg.repetition_penalty);
    logits = torch::where(seen, penalised, logits);
  }
  if (cfg.temperature <= 0.0) return logits.argmax(-1);
  logits = logits / cfg.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (cfg.top_k > 0 && cfg.top_k < V) {
    auto kth = std::get<0>(logits.topk(cfg.top_k, -1)).narrow(1, cfg.top_k - 1, 1);  // [B, 1]
    logits = logits.masked_fill(logits.lt(kth), neg_inf);
  }
  if (cfg.top_p < 1.0) {
    // Drop the least likely tokens whose total mass stays within 1 - top_p; keep at least one.
    auto [sorted, order] = logits.sort(-1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto drop_sorted = cumulative.le(1.0 - cfg.top_p);
    drop_sorted.narrow(1, V - 1, 1).fill_(false);
    auto drop = torch::zeros_like(drop_sorted).scatter_(1, order, drop_sorted);
    logits = logits.masked_fill(drop, neg_inf);
  }
  auto probs = logits.softmax(-1);
  return torch::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1);
}

std::vector<Generation> generate(CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationConfig& cfg) {
  torch::NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(prompts.size());
  std::vector<Generation> out(static_cast<size_t>(B));
  if (B == 0 || cfg.max_new_tokens <= 0) return out;
  int64_t P = 0;
  bool padded = false;
  for (const auto& p : prompts) {
    TUNE_CHECK(!p.empty(), "generate: empty prompt");
    P = std::max<int64_t>(P, static_cast<int64_t>(p.size()));
  }
  for (const auto& p : prompts)
    if (static_cast<int64_t>(p.size()) != P) padded = true;
  const int64_t N = cfg.max_new_tokens;
  const int64_t capacity = P + N;
  const auto device = model.options().device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);

  // Left padding: every row's last prompt token sits in slot P-1.
  auto ids = torch::full({B, P}, cfg.pad_id, i64);            // [B, P]
  auto mask = torch::zeros({B, capacity}, i64);               // [B, P+N] 1 = real token
  auto history = torch::full({B, capacity}, int64_t{-1}, i64);  // [B, P+N] for the repetition penalty
  {
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    auto hist_a = history.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompts[static_cast<size_t>(b)];
      const int64_t off = P - static_cast<int64_t>(p.size());
      for (size_t t = 0; t < p.size(); ++t) {
        ids_a[b][off + static_cast<int64_t>(t)] = p[t];
        mask_a[b][off + static_cast<int64_t>(t)] = 1;
        hist_a[b][off + static_cast<int64_t>(t)] = p[t];
      }
    }
  }
  ids = ids.to(device);
  mask = mask.to(device);
  history = history.to(device);
  auto positions = (mask.narrow(1, 0, P).cumsum(1) - 1).clamp_min(0);  // [B, P]
  auto next_position = positions.select(1, P - 1) + 1;                 // [B]

  KVCache cache = model.make_cache(B, capacity);
  torch::Generator gen = make_generator(device, cfg.seed);
  std::vector<int64_t> active(static_cast<size_t>(B));  // original index of each batch row
  for (int64_t b = 0; b < B; ++b) active[static_cast<size_t>(b)] = b;

  ForwardArgs args;
  args.input_ids = ids;
  args.position_ids = positions;
  if (padded) args.attention_mask = mask.narrow(1, 0, P);
  args.cache = &cache;
  auto hidden = model.forward_hidden(args);                                         // [B, P, D]
  auto logits = model.logits(hidden.select(1, P - 1)).to(torch::kFloat32);          // [B, V]

  for (int64_t step = 0; step < N; ++step) {
    auto next = sample_next(logits, history, cfg, gen);  // [B']
    torch::Tensor logprob;
    if (cfg.return_logprobs) {
      auto scaled = cfg.temperature > 0 ? logits / cfg.temperature : logits;
      logprob = scaled.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1).cpu().contiguous();
    }
    auto next_cpu = next.cpu();
    auto next_a = next_cpu.accessor<int64_t, 1>();
    const float* logprob_a = cfg.return_logprobs ? logprob.data_ptr<float>() : nullptr;
    std::vector<int64_t> keep;
    for (size_t r = 0; r < active.size(); ++r) {
      auto& g = out[static_cast<size_t>(active[r])];
      const int64_t token = next_a[static_cast<int64_t>(r)];
      g.tokens.push_back(static_cast<int32_t>(token));
      if (cfg.return_logprobs) g.logprobs.push_back(logprob_a[r]);
      bool stop = std::find(cfg.stop_ids.begin(), cfg.stop_ids.end(), token) != cfg.stop_ids.end();
      if (stop) g.finish = FinishReason::stop;
      else if (step + 1 < N) keep.push_back(static_cast<int64_t>(r));
    }
    if (keep.empty()) break;
    if (keep.size() != active.size()) {
      // Finished rows leave the batch: later steps cost only what is still running.
      auto rows = torch::tensor(keep, i64).to(device);
      cache.keep_rows(rows);
      mask = mask.index_select(0, rows);
      history = history.index_select(0, rows);
      next = next.index_select(0, rows);
      next_position = next_position.index_select(0, rows);
      std::vector<int64_t> still;
      for (int64_t r : keep) still.push_back(active[static_cast<size_t>(r)]);
      active = std::move(still);
    }
    const int64_t slot = P + step;
    mask.select(1, slot).fill_(1);
    history.select(1, slot).copy_(next);

    ForwardArgs step_args;
    step_args.input_ids = next.unsqueeze(1);             // [B', 1]
    step_args.position_ids = next_position.unsqueeze(1);  // [B', 1]
    if (padded) step_args.attention_mask = mask.narrow(1, 0, slot + 1);
    step_args.cache = &cache;
    hidden = model.forward_hidden(step_args);                                 // [B', 1, D]
    logits = model.logits(hidden.select(1, 0)).to(torch::kFloat32);          // [B', V]
    next_position = next_position + 1;
  }
  return out;
}

}  // namespace tune::model

// The rollout loop: plan the prompts, prefill each distinct prompt once, share its KV cache with
// its G rows, then decode every row one token per step without waiting for the device, except at
// a stop check every `stop_check_interval` steps.
#include "tune/rollout/engine.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "tune/core/error.h"
#include "rollout/assemble.h"
#include "tune/lora/merge.h"
#include "tune/rollout/sampling.h"

namespace tune::rollout {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Eval mode (no dropout) for the rollout; the caller's mode comes back on scope exit.
class EvalMode {
 public:
  explicit EvalMode(torch::nn::Module& m) : module_(m), was_training_(m.is_training()) { module_.eval(); }
  ~EvalMode() { module_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

// Which prompts run, after max_prompt_length, and which of them are the same token sequence.
struct PromptPlan {
  std::vector<int64_t> kept;                   // input index of each kept prompt
  std::vector<bool> cut;                       // per kept prompt: truncated on the left
  std::vector<int64_t> distinct_of;            // per kept prompt: its distinct prompt
  std::vector<std::vector<int32_t>> distinct;  // the sequences to prefill
};

PromptPlan plan_prompts(const std::vector<std::vector<int32_t>>& prompts, const SamplingConfig& s,
                        RolloutStats& stats) {
  PromptPlan plan;
  std::map<std::vector<int32_t>, int64_t> index;
  const auto limit = static_cast<size_t>(s.max_prompt_length);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    TUNE_CHECK(!p.empty(), "rollout: prompt ", i, " has no tokens");
    std::vector<int32_t> ids;
    bool cut = false;
    if (limit > 0 && p.size() > limit) {
      if (s.long_prompts == "skip") {
        ++stats.prompts_skipped;
        continue;
      }
      ids.assign(p.end() - static_cast<std::ptrdiff_t>(limit), p.end());  // the end of a prompt is what the completion continues
      cut = true;
      ++stats.prompts_truncated;
    } else {
      ids = p;
    }
    auto [it, fresh] = index.emplace(ids, static_cast<int64_t>(plan.distinct.size()));
    if (fresh) plan.distinct.push_back(std::move(ids));
    plan.kept.push_back(static_cast<int64_t>(i));
    plan.cut.push_back(cut);
    plan.distinct_of.push_back(it->second);
  }
  return plan;
}

torch::Tensor to_index_tensor(const std::vector<int64_t>& v, torch::Device device) {
  return torch::tensor(v, torch::kInt64).to(device);
}

}  // namespace

RolloutEngine::RolloutEngine(model::CausalLM& model, EngineOptions options)
    : model_(model), options_(std::move(options)) {
  options_.config.validate();
}

RolloutBatch RolloutEngine::rollout(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                                    const SamplingConfig& s, torch::Generator& generator) {
  const auto started = Clock::now();
  s.validate();
  TUNE_CHECK(G >= 1, "rollout: samples per prompt must be >= 1, got ", G);
  const EngineConfig& ec = options_.config;
  torch::NoGradGuard no_grad;
  EvalMode eval_mode(model_);
  std::optional<lora::MergedAdapters> merged;
  if (ec.merge_lora && options_.lora && !options_.lora->empty()) merged.emplace(model_, *options_.lora);

  const torch::Device device = model_.options().device();
  auto sync = [&] {
    if (ec.profile && device.is_cuda()) torch::cuda::synchronize(device.index());
  };
  RolloutStats stats;
  stats.prompts = static_cast<int64_t>(prompts.size());
  PromptPlan plan = plan_prompts(prompts, s, stats);
  const int64_t D = static_cast<int64_t>(plan.distinct.size());
  const int64_t N = static_cast<int64_t>(plan.kept.size()) * G;
  stats.distinct_prompts = D;
  stats.samples = N;

  // Row r = sample r % G of kept prompt r / G.
  std::vector<int64_t> source(static_cast<size_t>(N));
  std::vector<RowPrompt> row_prompts(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    const auto k = static_cast<size_t>(r / G);
    source[static_cast<size_t>(r)] = plan.distinct_of[k];
    row_prompts[static_cast<size_t>(r)] = {&plan.distinct[static_cast<size_t>(plan.distinct_of[k])], plan.kept[k],
                                           plan.cut[k]};
  }
  std::vector<RowState> rows(static_cast<size_t>(N));
  if (N == 0) {
    RolloutBatch empty = assemble_batch(row_prompts, rows, G, options_, device);
    stats.total_seconds = since(started);
    empty.stats = stats;
    return empty;
  }

  // ---- Prefill: the distinct prompts, left-padded so every row's last prompt token is slot P-1.
  auto t0 = Clock::now();
  int64_t P = 0;
  for (const auto& p : plan.distinct) P = std::max<int64_t>(P, static_cast<int64_t>(p.size()));
  bool padded = false;
  auto ids_host = torch::full({D, P}, options_.pad_id, torch::kInt64);  // [D, P]
  auto mask_host = torch::zeros({D, P}, torch::kInt64);                 // [D, P]
  {
    auto ids_a = ids_host.accessor<int64_t, 2>();
    auto mask_a = mask_host.accessor<int64_t, 2>();
    for (int64_t d = 0; d < D; ++d) {
      const auto& p = plan.distinct[static_cast<size_t>(d)];
      const int64_t off = P - static_cast<int64_t>(p.size());
      padded |= off > 0;
      for (size_t t = 0; t < p.size(); ++t) {
        ids_a[d][off + static_cast<int64_t>(t)] = p[t];
        mask_a[d][off + static_cast<int64_t>(t)] = 1;
      }
    }
  }
  const int64_t max_new = s.max_new_tokens;
  const int64_t capacity = P + max_new;
  auto prompt_ids = ids_host.to(device);
  auto prompt_mask = mask_host.to(device);
  // Rows that are their own distinct prompt, in order (G = 1, no repeats): prefill in place.
  bool identity = N == D;
  for (int64_t r = 0; identity && r < N; ++r) identity = source[static_cast<size_t>(r)] == r;

  model::KVCache cache = model_.make_cache(D, identity ? capacity : P);
  model::ForwardArgs prefill;
  prefill.input_ids = prompt_ids;
  prefill.position_ids = (prompt_mask.cumsum(1) - 1).clamp_min(0);  // [D, P], 0.. over the real tokens
  if (padded) prefill.attention_mask = prompt_mask;
  prefill.cache = &cache;
  torch::Tensor hidden = model_.forward_hidden(prefill);                  // [D, P, H]
  torch::Tensor logits = model_.logits(hidden.select(1, P - 1));          // [D, V]
  torch::Tensor rows_source = to_index_tensor(source, device);            // [N]
  if (!identity) {
    // Each prompt's cache, computed once, copied into the rows of its G samples.
    cache = cache.gather_rows(rows_source, capacity);
    logits = logits.index_select(0, rows_source);  // [N, V]
  }
  torch::Tensor row_prompt_ids = identity ? prompt_ids : prompt_ids.index_select(0, rows_source);  // [N, P]
  torch::Tensor row_prompt_mask = identity ? prompt_mask : prompt_mask.index_select(0, rows_source);
  // Completion slots are marked real up front: a step reads only the slots filled so far.
  torch::Tensor key_mask;  // [n, P + max_new]
  if (padded) key_mask = torch::cat({row_prompt_mask, torch::ones({N, max_new}, row_prompt_mask.options())}, 1);
  torch::Tensor next_position = row_prompt_mask.sum(1);  // [n] position of the next token
  torch::Tensor seen;                                    // [n, V] for the repetition penalty
  if (s.repetition_penalty != 1.0) {
    const int64_t V = logits.size(1);
    seen = torch::zeros({N, V}, torch::TensorOptions().dtype(torch::kInt32).device(device))
               .scatter_add_(1, row_prompt_ids, row_prompt_mask.to(torch::kInt32))
               .gt(0);
  }
  sync();
  stats.prefill_seconds = since(t0);

  // ---- Decode.
  const int64_t K = ec.stop_check_interval;
  StopScanner scanner(options_.eos_ids, s.stop_strings, options_.tokenizer);
  std::vector<int64_t> running(static_cast<size_t>(N));  // original row of each running row
  for (int64_t r = 0; r < N; ++r) running[static_cast<size_t>(r)] = r;
  int64_t n = N;
  int64_t finished_running = 0;  // finished rows still in the batch
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  torch::Tensor window_tokens = torch::empty({n, K}, i64);   // [n, K] this window's tokens
  torch::Tensor window_logprobs = torch::empty({n, K}, f32);  // [n, K]

  for (int64_t step = 0; step < max_new; ++step) {
    auto ts = Clock::now();
    StepChoice choice = choose_next(logits, seen, s, generator);
    const int64_t col = step % K;
    window_tokens.select(1, col).copy_(choice.tokens);
    window_logprobs.select(1, col).copy_(choice.logprobs);
    if (seen.defined()) seen.scatter_(1, choice.tokens.unsqueeze(1), true);
    sync();
    stats.sampling_seconds += since(ts);
    stats.row_steps += n;
    ++stats.decode_steps;
    const bool last = step + 1 == max_new;

    if (col == K - 1 || last) {
      // ---- Stop check: the one point the host waits for the device.
      auto th = Clock::now();
      ++stats.stop_checks;
      auto tok_h = window_tokens.narrow(1, 0, col + 1).to(torch::kCPU).contiguous();  // [n, filled]
      auto lp_h = window_logprobs.narrow(1, 0, col + 1).to(torch::kCPU).contiguous();
      auto tok_a = tok_h.accessor<int64_t, 2>();
      auto lp_a = lp_h.accessor<float, 2>();
      for (int64_t i = 0; i < n; ++i) {
        RowState& row = rows[static_cast<size_t>(running[static_cast<size_t>(i)])];
        if (row.done) continue;  // riding along: what it samples now is discarded
        const auto from = static_cast<int64_t>(row.tokens.size());
        for (int64_t c = 0; c <= col; ++c) {
          row.tokens.push_back(static_cast<int32_t>(tok_a[i][c]));
          row.logprobs.push_back(lp_a[i][c]);
        }
        if (auto hit = scanner.scan(row.tokens, from)) {
          row.done = true;
          row.finish = hit->reason;
          row.tokens.resize(static_cast<size_t>(hit->length));  // tokens drawn after the stop are discarded
          row.logprobs.resize(static_cast<size_t>(hit->length));
          ++finished_running;
        }
      }
      bool stop = last || finished_running == n;
      if (!stop && finished_running > 0 &&
          static_cast<double>(finished_running) >= ec.drop_finished_share * static_cast<double>(n)) {
        // Finished rows leave the batch: later steps cost only what still runs.
        std::vector<int64_t> keep, still;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t r = running[static_cast<size_t>(i)];
          if (!rows[static_cast<size_t>(r)].done) {
            keep.push_back(i);
            still.push_back(r);
          }
        }
        auto keep_t = to_index_tensor(keep, device);
        cache.keep_rows(keep_t);
        choice.tokens = choice.tokens.index_select(0, keep_t);
        next_position = next_position.index_select(0, keep_t);
        if (key_mask.defined()) key_mask = key_mask.index_select(0, keep_t);
        if (seen.defined()) seen = seen.index_select(0, keep_t);
        stats.rows_dropped += n - static_cast<int64_t>(keep.size());
        running = std::move(still);
        n = static_cast<int64_t>(running.size());
        finished_running = 0;
        window_tokens = torch::empty({n, K}, i64);
        window_logprobs = torch::empty({n, K}, f32);
      }
      stats.host_seconds += since(th);
      if (stop) break;
    }

    // ---- One token for every running row: slot P + step, position P_r + step.
    auto td = Clock::now();
    model::ForwardArgs one;
    one.input_ids = choice.tokens.unsqueeze(1);        // [n, 1]
    one.position_ids = next_position.unsqueeze(1);     // [n, 1]
    if (key_mask.defined()) one.attention_mask = key_mask.narrow(1, 0, P + step + 1);
    one.cache = &cache;
    hidden = model_.forward_hidden(one);               // [n, 1, H]
    logits = model_.logits(hidden.select(1, 0));       // [n, V]
    next_position = next_position + 1;
    sync();
    stats.decode_seconds += since(td);
  }

  auto ta = Clock::now();
  RolloutBatch batch = assemble_batch(row_prompts, rows, G, options_, device);
  stats.host_seconds += since(ta);
  for (const auto& info : batch.samples) stats.completion_tokens += info.completion_length;
  stats.total_seconds = since(started);
  batch.stats = stats;
  return batch;
}

}  // namespace tune::rollout

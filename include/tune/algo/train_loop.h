#pragma once
// The loop every trainer runs, so that an algorithm file reads as its loss: gather `grad_accum`
// micro-batches (an exhausted epoch rolls over), one stepper step (accumulate, all-reduce seam,
// clip, skip non-finite, update), the progress line, a metrics record every `log_every` steps,
// evaluation every `eval_every` and at the end, checkpoints every `save_every` and at the end.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tune/algo/run.h"
#include "tune/algo/sections.h"
#include "tune/core/log.h"
#include "tune/data/collate.h"
#include "tune/train/optimizer.h"
#include "tune/train/stepper.h"

namespace tune::algo {

// AdamW with parameter groups, the lr schedule and the stepper of one run.
struct Optimization {
  Optimization(const train::NamedParameters& trainable, const OptimSection& optim, const LoopSection& loop,
               int64_t total_steps);
  train::NamedParameters parameters;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<train::Stepper> stepper;
};

// Optimizer steps of a run: max_steps when > 0, else epochs x (batches per epoch / grad_accum).
int64_t planned_steps(const LoopSection& loop, int64_t batches_per_epoch);

// Attended tokens of a micro-batch, for tokens/s (counted on the host batch: no device sync).
inline int64_t attended_tokens(const data::Batch& b) { return b.attention_mask.sum().item<int64_t>(); }
inline int64_t attended_tokens(const data::PreferenceBatch& b) { return attended_tokens(b.batch); }

template <class Batch>
struct LoopHooks {
  // The normaliser count of a micro-batch (label tokens, pairs), known before its forward pass.
  std::function<double(const Batch&)> count;
  // The micro-batch's summed loss (with its graph) and metric sums.
  std::function<train::StepLoss(const Batch&)> loss;
  // Adds the step's metric means to its record (default: copied under their own names).
  std::function<void(Json&, const std::map<std::string, double>&)> metrics;
  // Called once after resuming, with the step the run starts from (0 when fresh); optional.
  std::function<void(int64_t start_step)> on_start;
  // Called after every step (e.g. the DPO symptom watcher); optional.
  std::function<void(const train::StepResult&)> after_step;
  // Held-out evaluation at `step`; returns the checkpoint-selection metric; optional.
  std::function<std::optional<double>(int64_t step)> evaluate;
};

// Resumes (cfg `resume`) into the optimization state and the iterator position, then runs the
// steps left of run.total_steps(). `device` receives the micro-batches.
template <class Iterator, class Batch>
void train_loop(Run& run, Optimization& opt, Iterator& batches, const LoopSection& loop, int64_t eval_every,
                const std::string& resume, const torch::Device& device, const LoopHooks<Batch>& hooks) {
  train::TrainingState state;
  state.parameters = opt.parameters;
  state.optimizer = opt.optimizer.get();
  state.stepper = opt.stepper.get();
  int64_t step = run.resume(resume, state);
  if (!state.data_position.is_null() && !state.data_position.empty()) batches.restore(state.data_position);

  if (hooks.on_start) hooks.on_start(step);
  const int64_t total = run.total_steps();
  const auto started = std::chrono::steady_clock::now();
  int64_t tokens_total = 0;
  while (step < total) {
    std::vector<Batch> micro;
    std::vector<double> counts;
    int64_t tokens = 0;
    while (static_cast<int64_t>(micro.size()) < loop.grad_accum)
      if (auto b = batches.next()) {
        counts.push_back(hooks.count(*b));
        tokens += attended_tokens(*b);
        micro.push_back(to_device(*b, device));
      }
    train::StepResult r = opt.stepper->step(counts, [&](int i) { return hooks.loss(micro[static_cast<size_t>(i)]); });
    if (train::world().distributed())  // tokens/s of the whole job
      tokens = static_cast<int64_t>(train::all_reduce_sum(train::world(), {static_cast<double>(tokens)})[0]);
    tokens_total += tokens;
    if (hooks.after_step) hooks.after_step(r);
    // A skipped step did not advance (the stepper warned and counts it toward its limit): the log
    // record, evaluation and checkpoint of this step were already made when it was reached.
    if (!r.applied) continue;
    step = r.step;
    run.progress(step, r.loss, r.lr, tokens);
    if (run.due(step, loop.log_every) || step == total) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      Json rec = {{"loss", r.loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm}};
      if (hooks.metrics)
        hooks.metrics(rec, r.metrics);
      else
        for (const auto& [k, v] : r.metrics) rec[k] = v;
      rec["tokens_per_s"] = secs > 0 ? static_cast<double>(tokens_total) / secs : 0.0;
      rec["epoch"] = batches.state().epoch;
      rec["skipped_steps"] = opt.stepper->total_skips();
      rec["peak_memory_bytes"] = peak_memory_bytes(device);
      if (const auto* sync = opt.stepper->gradient_sync()) {  // data parallelism: what communication costs
        rec["dist/world_size"] = train::world().world_size();
        rec["dist/grad_bytes"] = sync->last().bytes;
        rec["dist/grad_buckets"] = sync->last().buckets;
        rec["dist/buckets_in_backward"] = sync->last().started_in_backward;
        rec["dist/grad_wait_s"] = sync->last().exposed_s;
        rec["dist/optimizer_state_bytes"] = opt.stepper->optimizer_state_bytes();  // rank 0's
      }
      run.log(step, rec);
    }
    const bool last = step == total;
    std::optional<double> metric;
    if (hooks.evaluate && (run.due(step, eval_every) || last)) metric = hooks.evaluate(step);
    if (run.due(step, loop.save_every) || last) {
      state.data_position = batches.state_json();
      run.save(state, step, metric);
    }
  }
  run.finish();
}

}  // namespace tune::algo

#pragma once
// One optimizer step of any algorithm:
//   global count -> per micro-batch: loss_sum / global count, backward (the last one all-reduces
//   gradient buckets as they complete: GradientSync) -> all-reduce the loss and metric sums
//   -> clip the gradient norm -> non-finite check (skip) -> optimizer step at the scheduled lr.
// An algorithm's loop is then: build micro-batches, call step(), log the result.
//
//   StepResult r = stepper.step(counts, [&](int micro) {
//     auto lp = ops::token_logprob(model(batch[micro].input), batch[micro].labels);
//     return StepLoss{-lp.logprob.sum()};
//   });
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/train/communicator.h"
#include "tune/train/gradient_sync.h"
#include "tune/train/schedule.h"

namespace tune::train {

// One micro-batch's share of a metric: the sum and what it is averaged over (pairs or sequences for
// a per-sequence metric, tokens for a per-token one). The step reports sum / count over every
// micro-batch and rank, whatever the loss is normalised by.
struct MetricSum {
  double sum = 0;
  double count = 0;
};

struct StepLoss {
  // Scalar: the SUM of the per-item losses of this micro-batch (not the mean), with its graph.
  torch::Tensor loss_sum;
  // Optional metrics to report as means over the step. Same keys on every micro-batch and rank.
  std::map<std::string, MetricSum> metrics;
};

// Metric sums that all share one count (e.g. per-pair sums of a DPO micro-batch of `count` pairs).
std::map<std::string, MetricSum> metric_sums(const std::map<std::string, double>& sums, double count);

struct StepperConfig {
  double max_grad_norm = 1.0;          // <= 0: no clipping (the norm is still measured)
  int max_consecutive_skips = 5;       // skipped steps in a row (non-finite or empty) before tune::Error
  // ZeRO stage 1 (data parallelism): each rank keeps the AdamW state of its share of the parameters
  // only and updates those; the updated parameters are then broadcast from their owners.
  bool shard_optimizer_state = false;
};

struct StepResult {
  int64_t step = 0;            // optimizer steps completed after this call
  bool applied = false;        // false: skipped (non-finite, or no tokens), no update made; counts
                               // toward max_consecutive_skips either way
  std::string skip_reason;     // why, when skipped
  double loss = 0;             // sum of loss_sum over micro-batches and ranks / global count
  double grad_norm = 0;        // total L2 norm before clipping
  double lr = 0;               // learning rate the update used
  double normalizer = 0;       // global count the loss was divided by
  std::map<std::string, double> metrics;  // per metric: global sum / global count (absent when the count is 0)
};

class Stepper {
 public:
  // The optimizer's parameters are the ones clipped and all-reduced. comm defaults to world().
  Stepper(torch::optim::Optimizer& optimizer, LrSchedule schedule, StepperConfig config = {},
          Communicator* comm = nullptr);

  // micro_counts[i]: the normaliser count of micro-batch i (label tokens, pairs, ...), known before
  // its forward pass; micro_loss(i) runs micro-batch i's forward and returns its summed loss.
  StepResult step(const std::vector<double>& micro_counts, const std::function<StepLoss(int micro)>& micro_loss);

  int64_t steps_done() const { return step_; }
  int consecutive_skips() const { return consecutive_skips_; }
  int64_t total_skips() const { return total_skips_; }
  const LrSchedule& schedule() const { return schedule_; }
  // Buckets, bytes and how many buckets left during backward in the last step (null: one process).
  const GradientSync* gradient_sync() const { return sync_.get(); }
  Communicator& communicator() { return *comm_; }

  // Step counters and the schedule's settings, for checkpoints. load_state restores the counters.
  Json state() const;
  void load_state(const Json& state);

  // ZeRO-1 around checkpoints (no-ops otherwise; collectives: every rank calls them): before a save,
  // rank 0 receives every rank's optimizer state (the checkpoint then holds all of it, as without
  // sharding); after a save or a load, each rank drops the state of parameters it does not own.
  void gather_optimizer_state();
  void release_foreign_optimizer_state();
  // Bytes of optimizer state this rank holds.
  double optimizer_state_bytes() const;

 private:
  StepResult skip(StepResult result, const std::string& reason);

  torch::optim::Optimizer& optimizer_;
  LrSchedule schedule_;
  StepperConfig config_;
  Communicator* comm_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<GradientSync> sync_;  // data parallelism: gradient buckets overlapped with backward
  std::vector<int> owner_;              // ZeRO-1: the rank that updates each of params_ (empty: off)
  void update_owned_and_broadcast();
  int64_t step_ = 0;
  int consecutive_skips_ = 0;
  int64_t total_skips_ = 0;
};

}  // namespace tune::train

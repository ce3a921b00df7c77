#pragma once
// Gradient all-reduce overlapped with backward, DDP's way: the parameters are split into buckets
// (~25 MiB, in reverse order, since backward produces the last layers' gradients first); during the
// backward of a step's last micro-batch, a bucket's all-reduce starts as soon as the gradient of
// each of its parameters is fully accumulated (a post-accumulate-grad hook per parameter), while
// backward goes on with the earlier layers. Buckets start in index order on every rank, since
// collectives pair up by order: a bucket complete early waits for the ones before it. finish() starts whatever did not complete (parameters
// this rank did not use get zeros, so every rank sends the same buckets) and waits for all.
// Earlier micro-batches of an accumulation reduce nothing. The result never depends on the hooks:
// without them (or under a recompute that bypasses them) finish() reduces every bucket itself.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "tune/train/communicator.h"

namespace tune::train {

struct GradientSyncStats {
  int64_t buckets = 0;
  int64_t started_in_backward = 0;  // buckets whose all-reduce began before backward returned
  double bytes = 0;                 // gradient bytes all-reduced per step
  double exposed_s = 0;             // time finish() spent starting the rest and waiting: what
                                    // backward did not hide
};

class GradientSync {
 public:
  GradientSync(std::vector<torch::Tensor> parameters, Communicator& comm, int64_t bucket_bytes = 25 << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward is the step's last: reduce buckets as their gradients complete.
  void arm();
  // Starts the buckets not started yet, waits for all: every gradient then holds the sum over ranks.
  void finish();
  const GradientSyncStats& last() const { return stats_; }

 private:
  friend struct GradientReadyHook;
  void ready(size_t parameter);
  void start(size_t bucket);

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  std::vector<std::vector<size_t>> buckets_;  // parameter indices
  std::vector<size_t> bucket_of_;             // parameter -> bucket
  std::vector<size_t> ready_count_;
  std::vector<char> seen_;                    // parameter reported ready in this backward
  std::vector<std::unique_ptr<PendingReduce>> pending_;
  size_t next_ = 0;                           // the next bucket to start (they leave in order)
  bool armed_ = false;
  GradientSyncStats stats_;
};

}  // namespace tune::train

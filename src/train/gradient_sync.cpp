#include "tune/train/gradient_sync.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

#include "tune/core/error.h"

namespace tune::train {

// Called by autograd once a parameter's .grad holds this backward's contribution.
struct GradientReadyHook final : torch::autograd::PostAccumulateGradHook {
  GradientReadyHook(GradientSync* sync, size_t index) : sync(sync), index(index) {}
  void operator()(const torch::autograd::Variable&) override { sync->ready(index); }
  GradientSync* sync;
  size_t index;
};

GradientSync::GradientSync(std::vector<torch::Tensor> parameters, Communicator& comm, int64_t bucket_bytes)
    : params_(std::move(parameters)), comm_(comm) {
  bucket_of_.resize(params_.size());
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    TUNE_CHECK(p.is_leaf() && p.requires_grad(), "gradient sync: parameter ", k, " is not a trainable leaf tensor");
    const int64_t n = p.numel() * static_cast<int64_t>(p.element_size());
    const bool same_dtype = !buckets_.empty() && params_[buckets_.back().front()].scalar_type() == p.scalar_type();
    if (buckets_.empty() || !same_dtype || bytes + n > bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += n;
    stats_.bytes += static_cast<double>(n);
  }
  stats_.buckets = static_cast<int64_t>(buckets_.size());
  ready_count_.assign(buckets_.size(), 0);
  pending_.resize(buckets_.size());
  if (comm_.world_size() > 1)
    for (size_t k = 0; k < params_.size(); ++k)
      torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<GradientReadyHook>(this, k));
}

GradientSync::~GradientSync() {
  if (comm_.world_size() > 1)
    for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientSync::arm() {
  armed_ = comm_.world_size() > 1;
  std::fill(ready_count_.begin(), ready_count_.end(), 0);
  seen_.assign(params_.size(), 0);
  next_ = 0;
  for (auto& p : pending_) p.reset();  // left by a step that threw
  stats_.started_in_backward = 0;
}

void GradientSync::ready(size_t parameter) {
  if (!armed_) return;  // an earlier micro-batch of the accumulation, or not distributed
  const size_t b = bucket_of_[parameter];
  // A leaf used twice in one graph (tied weights) still has one accumulation, so one call; a second
  // call after its bucket left would mean a gradient changed after it was sent.
  TUNE_CHECK(!pending_[b], "gradient sync: the gradient of parameter ", parameter,
             " was accumulated again after its bucket's all-reduce started (a second backward through it in one "
             "micro-batch?)");
  if (seen_[parameter]) return;
  seen_[parameter] = 1;
  ++ready_count_[b];
  // Buckets leave in index order on every rank (collectives pair up by order): a complete bucket
  // waits for the ones before it.
  while (next_ < buckets_.size() && ready_count_[next_] == buckets_[next_].size()) {
    start(next_++);
    ++stats_.started_in_backward;
  }
}

void GradientSync::start(size_t bucket) {
  std::vector<torch::Tensor> grads;
  for (size_t k : buckets_[bucket]) {
    auto& p = params_[k];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  pending_[bucket] = comm_.start_all_reduce_sum(std::move(grads));
}

void GradientSync::finish() {
  if (comm_.world_size() == 1) return;
  armed_ = false;
  const auto t0 = std::chrono::steady_clock::now();
  while (next_ < buckets_.size()) start(next_++);
  for (auto& p : pending_) {
    p->wait();
    p.reset();
  }
  stats_.exposed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace tune::train

#pragma once
// The data-parallel seam. Training code only talks to this interface: LocalCommunicator is the single
// process; tune/dist/ implements it over one c10d process group (Gloo on CPU) created from the
// launcher's environment (torchrun, Slurm, Open MPI). The process has one world, as torch.distributed
// has one default group: `world()` is it (local until the CLI connects one).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tune::train {

// An all-reduce in flight; wait() completes it (the tensors then hold the sums) or throws.
class PendingReduce {
 public:
  virtual ~PendingReduce() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int world_size() const = 0;
  virtual int rank() const = 0;
  // Sums every tensor element-wise over all ranks, in place. Every rank passes the same list
  // (same count, shapes, dtypes, order); tensors need not be contiguous.
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  // The same, started now and finished by wait() (the tensors must stay alive until then): what
  // lets gradient buckets travel while backward still runs. By default it completes at once.
  virtual std::unique_ptr<PendingReduce> start_all_reduce_sum(std::vector<torch::Tensor> tensors);
  // Overwrites every tensor with rank `root`'s, in place (same list on every rank).
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
  bool is_main() const { return rank() == 0; }
  bool distributed() const { return world_size() > 1; }
};

// One process: world size 1, the sums are the tensors themselves.
class LocalCommunicator final : public Communicator {
 public:
  int world_size() const override { return 1; }
  int rank() const override { return 0; }
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  void broadcast(std::vector<torch::Tensor>&, int) override {}
  void barrier() override {}
};

// The process's world: a LocalCommunicator until set_world is called (once, before training).
Communicator& world();
void set_world(std::shared_ptr<Communicator> communicator);

// Sums of doubles over all ranks (one float64 all-reduce; nothing to do at world size 1).
std::vector<double> all_reduce_sum(Communicator& comm, std::vector<double> values);

// Every rank's `text`, in rank order (two all-reduces: the lengths, then the bytes in each rank's
// own slot). For small records (JSON statistics, RNG states), not for bulk data.
std::vector<std::string> all_gather_text(Communicator& comm, const std::string& text);

// A scalar and named sums, summed over all ranks in one all-reduce (same keys on every rank).
void all_reduce_sums(Communicator& comm, double& scalar, std::map<std::string, double>& sums);

// This rank's block [begin, end) of `count` items: contiguous, sizes differing by at most one.
// Fewer items than ranks: every rank takes all of them (split_evenly is then false, and the
// caller must not sum over ranks: a rank without items would have no metric keys to send).
std::pair<size_t, size_t> block_share(size_t count, const Communicator& comm);
inline bool split_evenly(size_t count, const Communicator& comm) {
  return count >= static_cast<size_t>(comm.world_size());
}

// This rank's share of `count` items under rank striding (items rank, rank + W, rank + 2W, ...):
// the indices it evaluates; every item is on exactly one rank.
std::vector<size_t> strided_share(size_t count, const Communicator& comm);

// Runs `work` on rank 0 alone (writing the run directory, checkpoints, exports) while the other
// ranks wait; when it throws, every rank throws: rank 0 its own error, the others one that names
// `what` and points at rank 0's message. A collective: every rank calls it.
void on_main_rank(Communicator& comm, const char* what, const std::function<void()>& work);

// Broadcasts `parameters` from rank 0, then checks that every rank holds the same values (a
// float64 checksum of each tensor compared across ranks); fails naming the first that differs.
void broadcast_and_verify(Communicator& comm, const std::vector<torch::Tensor>& parameters, const char* what);
// The check alone: fails when the ranks' parameters have drifted apart (e.g. after training).
void verify_equal(Communicator& comm, const std::vector<torch::Tensor>& parameters, const char* what);

}  // namespace tune::train

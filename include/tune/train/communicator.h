#pragma once
// The data-parallel seam. The stepper only talks to this interface; LocalCommunicator is the single
// process, an NCCL (GPU) or Gloo (CPU) implementation plugs in later without touching the stepper.
#include <torch/torch.h>

#include <vector>

namespace tune::train {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int world_size() const = 0;
  virtual int rank() const = 0;
  // Sums every tensor element-wise over all ranks, in place. Every rank passes the same list
  // (same count, shapes, dtypes, order).
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  virtual void barrier() = 0;
  bool is_main() const { return rank() == 0; }
};

// One process: world size 1, the sums are the tensors themselves.
class LocalCommunicator final : public Communicator {
 public:
  int world_size() const override { return 1; }
  int rank() const override { return 0; }
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  void barrier() override {}
};

}  // namespace tune::train

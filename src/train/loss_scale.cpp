#include "tune/train/loss_scale.h"

#include <numeric>

#include "tune/core/error.h"

namespace tune::train {

int64_t count_label_tokens(const torch::Tensor& labels, int64_t ignore_index) {
  TUNE_CHECK(labels.defined(), "count_label_tokens: undefined labels");
  return (labels != ignore_index).sum().item<int64_t>();
}

double global_normalizer(const std::vector<double>& micro_counts, Communicator& comm) {
  double local = 0;
  for (double c : micro_counts) {
    TUNE_CHECK(c >= 0, "loss normaliser: micro-batch count must be >= 0, got ", c);
    local += c;
  }
  if (comm.world_size() == 1) return local;
  std::vector<torch::Tensor> t{torch::tensor({local}, torch::kFloat64)};
  comm.all_reduce_sum(t);
  return t[0].item<double>();
}

}  // namespace tune::train

#pragma once
// Loss normalisation that does not depend on how one optimizer step is split into micro-batches
// or ranks. The loss of a step is (sum of per-token losses over every micro-batch of every rank)
// / (number of label tokens over all of them). Each micro-batch's backward therefore uses
//   loss_sum(micro) / global_count
// with global_count known BEFORE the first backward: the count is summed over the step's
// micro-batches first and then all-reduced. Averaging per-micro-batch means (the classic bug)
// weights the tokens of short micro-batches more and changes with the split.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tune/ops/token_logprob.h"
#include "tune/train/communicator.h"

namespace tune::train {

// Label tokens (labels != ignore_index) in one micro-batch's labels, any shape.
int64_t count_label_tokens(const torch::Tensor& labels, int64_t ignore_index = ops::kIgnoreIndex);

// Sum of the micro-batches' normaliser counts (tokens for SFT, pairs for DPO/RM, ...) over this
// step and every rank. A collective: every rank must call it once per step.
double global_normalizer(const std::vector<double>& micro_counts, Communicator& comm);

}  // namespace tune::train

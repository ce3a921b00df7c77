#pragma once
// Inside the rollout module: the rows as the decoding loop leaves them on the host -> the padded
// tensors of a RolloutBatch.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "tune/rollout/engine.h"

namespace tune::rollout {

struct RowState {
  std::vector<int32_t> tokens;  // the completion (the EOS / stop token included once done)
  std::vector<float> logprobs;  // the sampler's log-prob of each token
  bool done = false;            // ended by an EOS id or a stop string
  FinishReason finish = FinishReason::length;
};

struct RowPrompt {
  const std::vector<int32_t>* ids = nullptr;  // the (possibly truncated) prompt of the row
  int64_t prompt_index = 0;                   // index into the caller's prompts
  bool cut = false;                           // truncated on the left
};

// Rows not done end by length (truncated). Builds every tensor on the host and moves it to
// `device` once; decodes the texts when options.tokenizer is set.
RolloutBatch assemble_batch(const std::vector<RowPrompt>& prompts, std::vector<RowState>& rows, int64_t group_size,
                            const EngineOptions& options, torch::Device device);

}  // namespace tune::rollout

#pragma once
// One GRPO round's completions as training rows: what a rollout becomes once it is scored, its
// group advantages computed and the rows without signal (dynamic sampling) dropped. Rows of several
// rollouts (dynamic sampling draws more) are concatenated, padded to one width.
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/reward/reward.h"
#include "tune/rollout/engine.h"

namespace tune::algo {

// Per-sample facts kept on the host for metrics and samples.jsonl.
struct RoundSample {
  int64_t prompt_index = 0;  // index into the run's training prompts
  std::string prompt;
  std::string completion;
  std::optional<double> reward;  // total; nullopt: not judged (excluded)
  Json terms = Json::object();   // reward/<name> values
  double advantage = 0;
  int64_t length = 0;
  bool truncated = false;
  std::string finish;
};

struct RoundRows {
  torch::Tensor input_ids;       // [N, T] int64, prompt then completion, right padded
  torch::Tensor attention_mask;  // [N, T] int64, 1 on real tokens
  torch::Tensor labels;          // [N, T] int64, the completion tokens, -100 elsewhere
  torch::Tensor mask;            // [N, T] float32, completion tokens that count in the loss
  torch::Tensor sampler_logp;    // [N, T] float32, the sampler's log-prob of each completion token
  torch::Tensor advantages;      // [N] float32
  torch::Tensor old_logp;        // [N, T] float32 before the round's first update (mu > 1), or undefined
  torch::Tensor ref_logp;        // [N, T] float32 under the reference (beta > 0), or undefined
  std::vector<RoundSample> samples;  // N

  int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  // Rows `rows` (host indices) of this round.
  RoundRows select(const std::vector<int64_t>& rows) const;
  // This round's rows followed by `other`'s, padded to the wider of the two.
  void append(const RoundRows& other);
};

struct RoundOptions {
  int64_t group_size = 8;
  std::string baseline = "mean";
  std::string scale = "group";
  double std_eps = 1e-4;
  bool mask_truncated = false;
  bool drop_zero_variance = false;  // dynamic sampling
};

struct ScoredRound {
  RoundRows rows;                    // the rows kept (all, or those of groups with signal)
  int64_t groups = 0;                // groups rolled out
  int64_t zero_variance_groups = 0;  // without signal (all rewards equal, or fewer than 2 judged)
};

// Scores a rollout (prompt_indices[k] = the training prompt of its k-th prompt) and builds its
// rows. `samples` are the reward's view of each row, in rollout order.
ScoredRound score_round(const rollout::RolloutBatch& rollout, const std::vector<reward::Sample>& samples,
                        const reward::Scores& scores, const std::vector<int64_t>& prompt_indices,
                        const RoundOptions& options);

}  // namespace tune::algo

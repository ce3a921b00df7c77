#pragma once
// A reward model (`tune rm` output, full or LoRA layout) as a reward term (kind: model). It gets
// text, so it renders each sample with ITS OWN tokenizer and chat template -- the prompt
// conversation (Sample::messages, else the prompt as one user message) plus the completion as the
// assistant's answer, exactly as `tune rm` rendered its training pairs and `tune score` scores --
// whatever the policy's tokenizer and template are. Scores are batched (sorted by length, chunks
// of batch_size, no gradients) and normalised (reward/normalize.h):
//   stats    (score - mean) / std from the RM's reward_stats.json (its calibration after training)
//   fixed    the config's mean / std
//   running  running mean / std of every score so far (its state travels with checkpoints)
//   auto     stats when reward_stats.json has them, else running
//   none     raw scores
//
//   reward::Composite rewards = algo::build_reward(cfg.reward);  // every kind, model included
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tune/algo/shared_base.h"
#include "tune/reward/config.h"
#include "tune/reward/normalize.h"
#include "tune/reward/reward.h"

namespace tune::algo {

class ModelReward : public reward::Reward {
 public:
  // Loads options.path on options.device; `key` ("reward.terms[1]") names the term in errors. With
  // `shared`, a LoRA reward model's adapters go onto that base as the role named `key`.
  explicit ModelReward(const reward::ModelOptions& options, const std::string& key = "reward.terms[0]",
                       SharedBase* shared = nullptr);
  ~ModelReward() override;

  std::vector<reward::Score> score(std::span<const reward::Sample> batch) override;
  // The reward model's scores before normalisation (updates no statistics).
  std::vector<double> raw_scores(std::span<const reward::Sample> batch);
  // The token ids it scores for a sample (its template, truncated to its last max_seq_len tokens).
  std::vector<int32_t> encode(const reward::Sample& sample) const;

  const reward::Normalizer& normalizer() const;
  Json state() const override;  // the running statistics, {} for the other modes
  void restore(const Json& state) override;
  // "raw": the last score() call's scores before normalisation (what the RM itself said).
  reward::MetricSums details() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// reward::build with kind: model available (ModelReward), its LoRA reward models on `shared` when given.
reward::Composite build_reward(const reward::RewardConfig& config, const std::string& prefix = "reward",
                               SharedBase* shared = nullptr);

}  // namespace tune::algo

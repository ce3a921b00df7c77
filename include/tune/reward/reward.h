#pragma once
// Rewards for RL: each scores a batch of decoded completions, one optional number per sample
// (nullopt = "cannot judge": the caller excludes that sample and counts it). Torch-free; the
// reward-model term (kind: model) lives in tune/algo/model_reward.h and plugs into the same
// composite. See docs/rewards.md.
//
//   reward::RewardConfig cfg = ...;                  // the `reward:` section (tune/reward/config.h)
//   reward::Composite rewards = algo::build_reward(cfg);   // or reward::build(cfg) without kind: model
//   std::vector<reward::Sample> batch = ...;         // decoded rollouts: prompt, completion, reference, ...
//   reward::Scores s = rewards.score_terms(batch);
//   for (size_t i = 0; i < batch.size(); ++i)
//     if (s.total[i]) use(*s.total[i]);              // else: excluded (s.null_count() of them)
//   log(s.metrics());      // {"reward/total": .., "reward/correct": .., "reward/null_fraction": ..}
//   for (auto& [key, sum] : s.sums()) ...            // the same as (sum, count), to add up over ranks
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tune/core/json.h"

namespace tune::reward {

// What a reward sees of one rollout.
struct Sample {
  std::string prompt;                    // the prompt's text (a record's `prompt`, or its last user message)
  std::string completion;                // the decoded completion, special tokens removed
  std::optional<std::string> reference;  // the record's reference answer, when it has one
  Json metadata = Json::object();        // the record's other fields (id, difficulty, ...)
  int64_t completion_tokens = 0;         // tokens generated
  bool truncated = false;                // stopped by the length limit (no EOS / stop string)
  Json messages = nullptr;               // the prompt conversation [{role, content}] when the record has
                                         // one (an RM renders it); null: [{user: prompt}]
};

using Score = std::optional<double>;  // nullopt: cannot judge

// A mean's parts, so means add up exactly over batches and ranks.
struct MetricSum {
  double sum = 0.0;
  double count = 0.0;
};
using MetricSums = std::vector<std::pair<std::string, MetricSum>>;

class Reward {
 public:
  virtual ~Reward() = default;
  // One score per sample, in order (never a shorter list). Failures throw tune::Error.
  // Not thread-safe: one caller at a time.
  virtual std::vector<Score> score(std::span<const Sample> batch) = 0;
  // What must survive a resume (running statistics); {} when stateless.
  virtual Json state() const { return Json::object(); }
  virtual void restore(const Json& /*state*/) {}
  // What the last score() call saw beside its values, logged as reward/<term>/<key> (a reward
  // model: "raw", its scores before normalisation); none by default.
  virtual MetricSums details() const { return {}; }
};

// One term's own (unweighted) values over a batch.
struct TermScores {
  std::string name;
  double weight = 1.0;
  std::vector<Score> values;
  MetricSums details;  // the term's details() for this batch
};

struct Scores {
  // sum_k weight_k * value_k per sample; nullopt when any term with a non-zero weight said nullopt.
  std::vector<Score> total;
  std::vector<TermScores> terms;  // in configuration order

  int64_t null_count() const;
  // "reward/total": the total over the judged samples; "reward/<name>": that term's raw
  // (unweighted) values over the samples it judged, then its details as "reward/<name>/<key>";
  // "reward/null_fraction": samples whose total is null, over all samples. In configuration order.
  MetricSums sums() const;
  // The means of sums(); a key with count 0 is omitted.
  Json metrics() const;
};

// A weighted sum of named terms. The null rule: a sample is judged only when every term with a
// non-zero weight judged it (a sum missing a term is on another scale than its group's other
// sums, so it is excluded rather than guessed). A weight-0 term is scored and logged only.
class Composite : public Reward {
 public:
  // Names must be unique ("total" and "null_fraction" are reserved: they are metric keys).
  void add(std::string name, double weight, std::unique_ptr<Reward> term);

  // Every term scores the whole batch (one call each, in order).
  Scores score_terms(std::span<const Sample> batch);
  std::vector<Score> score(std::span<const Sample> batch) override { return score_terms(batch).total; }

  Json state() const override;  // {name: state} of the terms that have one
  void restore(const Json& state) override;

  size_t size() const { return terms_.size(); }
  std::vector<std::string> names() const;

 private:
  struct Term {
    std::string name;
    double weight;
    std::unique_ptr<Reward> reward;
  };
  std::vector<Term> terms_;
};

}  // namespace tune::reward

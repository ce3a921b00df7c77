#pragma once
// What the RL trainers (grpo, ppo) share around their rounds: the seeded prompt order, the rollout
// RNG's checkpoint form, samples.jsonl, the trainer-side log-probs of round rows, and the held-out
// pass@1 evaluation.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "algo/grpo_round.h"
#include "tune/algo/grpo.h"
#include "tune/algo/reference.h"
#include "tune/core/json.h"
#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"
#include "tune/reward/reward.h"
#include "tune/rollout/config.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"
#include "tune/text/dataset.h"
#include "tune/text/tokenizer.h"
#include "tune/train/communicator.h"

namespace tune::algo {

using RlClock = std::chrono::steady_clock;
inline double seconds_since(RlClock::time_point t) {
  return std::chrono::duration<double>(RlClock::now() - t).count();
}

// The start every RL trainer shares: a reward, prompt data and a model are named (`reward_hint`
// ends the message of a missing reward), the rollout section is valid (a warning when it no longer
// samples the policy), and the prompts are rendered with the model's chat template: every training
// prompt, and the first `eval_limit` of the eval split (data.eval_*). The model's tokenizer comes along.
struct RlPrompts {
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::vector<rollout::RolloutPrompt> train, eval;
};
RlPrompts load_rl_prompts(const ModelSection& model, const text::DataConfig& data, const reward::RewardConfig& reward,
                          const rollout::SamplingConfig& sampling, int64_t eval_limit, const std::string& reward_hint);

// The training prompts in a seeded order, reshuffled every epoch; its position is a checkpoint's.
class PromptOrder {
 public:
  PromptOrder(int64_t size, uint64_t seed);
  int64_t next();
  int64_t epoch() const { return epoch_; }
  Json state() const { return {{"epoch", epoch_}, {"index", index_}}; }
  void restore(const Json& s);

 private:
  void plan();
  int64_t size_, epoch_ = 0, index_ = 0;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

// A torch generator's state as hex text (checkpoints) and back.
std::string generator_hex(torch::Generator& gen);
void set_generator_hex(torch::Generator& gen, const std::string& hex);

// Appends complete lines to a log file (samples.jsonl), flushed: a crash loses no earlier line.
void append_lines(const std::filesystem::path& path, const std::string& text);

// The first `n` of `samples` as samples.jsonl lines of `kind` ("train", "eval") at step `at`.
void write_samples(const std::filesystem::path& path, const std::string& kind, int64_t at,
                   const std::vector<RoundSample>& samples, int64_t n);

// A supervised batch view of round rows [first, first + n), cut to its longest row.
data::Batch rows_batch(const RoundRows& rows, int64_t first, int64_t n);

// Columns [0, width) of rows [first, first + n) of x (undefined stays undefined).
torch::Tensor cols(const torch::Tensor& x, int64_t first, int64_t n, int64_t width);

// log p(token t | < t) at `temperature` and the policy's entropy at each label position, both
// [B, T] (0 off the labels), with the graph: the loss's log-probs, the entropy metric and bonus.
std::pair<torch::Tensor, torch::Tensor> logp_and_entropy(model::CausalLM& model, const data::Batch& batch,
                                                         double temperature);

// Trainer-side log-probs of round rows at `temperature`, no gradients, micro-batches of `micro`
// rows: rows.old_logp from the policy as it is now (need_old), rows.ref_logp from the reference
// (when it is active). Both [N, T] float32, 0 off the labels.
void round_logprobs(model::CausalLM& model, ReferenceModel& reference, RoundRows& rows, int64_t micro,
                    double temperature, bool need_old);

// Mean and population std of the values.
std::pair<double, double> mean_std(const std::vector<double>& v);

// Adds each term's details of one score_terms call (a reward model's raw scores) to a round's
// per-term sums, keyed "<term>/<key>": logged as reward/<term>/<key> beside reward/<term>.
void add_term_details(const reward::Scores& scores, std::map<std::string, std::pair<double, int64_t>>& sums);

// The rollout generator from a checkpoint's data position: this rank's stream when the checkpoint
// holds every rank's ("rollout_rng_ranks", same world size), rank 0's on one process (older
// checkpoints too); else a warning, and the stream the seed gave.
void restore_rollout_streams(torch::Generator& generator, const Json& data_position, train::Communicator& comm);

// Every rank's values, concatenated in rank order (world size 1: `values`).
std::vector<double> gather_values(train::Communicator& comm, const std::vector<double>& values);

// Mean and unbiased variance of x where mask is set, over every rank (masked_mean / masked_var of
// tune/ops/masked.h on one process).
struct MaskedMoments {
  double mean = 0, var = 0, count = 0;
};
MaskedMoments masked_moments(const torch::Tensor& x, const torch::Tensor& mask, train::Communicator& comm);
// masked_whiten with given moments: (x - mean) / sqrt(var + eps) where mask is set, 0 elsewhere (and
// everywhere when fewer than two values count).
torch::Tensor whiten_with(const torch::Tensor& x, const torch::Tensor& mask, const MaskedMoments& m, double eps);

// Data parallelism: every rank's count, in rank order (world size 1: {count}).
std::vector<int64_t> gather_counts(train::Communicator& comm, int64_t count);

// A round's sampling figures on this rank, and over() them summed over every rank (maxima and the
// fewest rows kept apart), so the metrics are the whole round's whatever the world size.
struct RoundTally {
  int64_t samples = 0, nulls = 0, completion_tokens = 0, truncated = 0, max_length = 0, groups = 0, flat_groups = 0;
  int64_t rows = 0;                 // rows kept for training (summed over ranks by over())
  std::vector<double> rewards;      // this rank's judged rewards (their sums travel)
  std::map<std::string, std::pair<double, int64_t>> terms;  // reward term -> (sum, count)
  int64_t fewest_rows = 0;          // set by over(): the smallest rank's rows
  double reward_sum = 0, reward_squares = 0;
  int64_t reward_count = 0;

  RoundTally over(train::Communicator& comm) const;
  // Mean and population std of the judged rewards (mean_std over every rank's).
  std::pair<double, double> reward_mean_std() const;
};

// Held-out pass@1, greedy and one sample per prompt at `sampling`'s temperature (as eval selects):
// a record with eval_pass@1_greedy / _sampled, eval_reward_*, eval_truncated_*, eval_pass@1 (the
// greedy rate when measured, else the sampled) and eval_prompts; the first greedy answers go to
// `shown`. A pass: eval.pass_term's value (default the first term) >= eval.pass_threshold.
Json evaluate_pass_at_1(rollout::RolloutEngine& engine, const std::vector<rollout::RolloutPrompt>& prompts,
                        reward::Composite& rewards, const GrpoEvalSection& eval, const rollout::SamplingConfig& sampling,
                        torch::Generator& generator, std::vector<RoundSample>* shown);

}  // namespace tune::algo

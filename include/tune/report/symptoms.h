#pragma once
// Training pathologies read from the metric stream: ONE table of rules (symptom_rules()) that the
// live watcher inside the trainers and `tune doctor` (replaying metrics.jsonl) both run. Each rule
// reports once, with the evidence (steps, values), the practitioners' likely cause and the remedy
// (practitioner-advice.md, "Symptoms"). Rules only see numbers, so every one is tested on
// synthetic streams (tests/report/test_symptoms*.cpp). Torch-free.
//
// A trainer feeds two kinds of records:
//   observe(step, metrics)       one optimizer step's metrics (loss, rewards/margins, reward, kl, ...);
//                                a step with `policy_frozen` 1 (PPO's critic warm-up) is passed over
//   observe_eval(step, metrics)  one evaluation's record (eval_loss, eval_exact_match, eval_pass@1, ...)
// Missing keys disable the rules that need them; non-finite values are ignored.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tune::report {

struct Symptom {
  std::string id;       // "chosen_collapse", "kl_explosion", ...
  int64_t step = 0;     // the step at which it was detected
  std::string message;  // what the metrics show, with the numbers
  std::string remedy;   // what to change
  std::string cause;    // the usual cause
};

// DPO rules (defaults of the former algo::DpoSymptomConfig; docs/dpo.md explains them).
struct DpoThresholds {
  // margin_slow: after `min_steps`, the least-squares slope of rewards/margins over the last
  // `window` observations, extrapolated over `horizon_steps`, stays under `min_margin_gain`, while
  // the margin itself is still below `target_margin`. (Practitioners: "margin grows slowly -> beta
  // too high"; the numbers are ours, set so a healthy tiny-model run stays silent.)
  int64_t min_steps = 100;
  int64_t window = 20;
  double horizon_steps = 100;
  double min_margin_gain = 0.2;
  double target_margin = 1.0;
  // chosen_collapse, fast form: the loss fell by >= `fast_loss_drop` (relative to the first
  // observation) within `fast_steps` steps while logps/chosen fell by >= `chosen_drop` nats.
  int64_t fast_steps = 50;
  double fast_loss_drop = 0.5;
  double chosen_drop = 1.0;
  // chosen_collapse, slow form (measured on a real tiny-model run, docs/dpo.md: loss 0.69 -> 0.60 over
  // 100 steps while logps/chosen went -4.4 -> -11): the mean loss of the last `smooth` observations is
  // below that of the first `smooth`, and mean logps/chosen fell by >= `chosen_relative_drop` times
  // its starting magnitude and by >= `chosen_drop` nats.
  int64_t smooth = 10;
  double chosen_relative_drop = 1.0;
};

// RL rules (defaults of the former algo::RlSymptomConfig; docs/grpo.md, docs/ppo.md).
struct RlThresholds {
  int64_t min_steps = 20;         // no verdict before this many step observations
  int64_t window = 10;            // observations averaged at the start and at the end
  int64_t flat_after = 50;        // reward_flat is judged once, at this many observations
  double kl_high = 0.5;           // per-token KL (nats) that counts as exploding (ours: ~10x a healthy run)
  double kl_low = 1e-4;           // per-token KL that counts as none
  double flat_reward = 0.02;      // |end - start| of the windowed reward below this: flat
  double length_factor = 2.0;     // windowed length changed by this factor either way
  double entropy_floor = 1.0 / 3; // windowed entropy below this share of its start
  double value_loss_cv = 0.5;     // value_oscillation: std / mean of value/loss over the last 2 windows
  double reward_std_high = 1.5;   // ... while the windowed reward_std is above this
  double hack_drop = 0.05;        // reward_hacking: held-out quality this far below its best
  // truncation: the windowed share of completions cut by the length limit. TRL #5697 / #6263 report
  // runs with 97-99% truncated and a reward of 0 (rl-algorithms.md); half is our line.
  double truncated_high = 0.5;
  // zero_variance_groups: the windowed share of groups whose rewards are all equal (no gradient:
  // DAPO's dynamic sampling exists for this, rl-algorithms.md). 0.8 is ours.
  double zero_variance_high = 0.8;
  // explained_variance_low (PPO): the windowed explained variance of the critic stays below this. A
  // constant prediction scores 0, so below 0 the critic is worse than no critic.
  double explained_variance_low = 0.0;
};

// Rules of supervised trainers (sft, rm, dpo): ours, from practitioner-advice.md's "loss spikes ->
// instability -> gradient clipping" and "late in training loss can fall while quality does not".
struct SupervisedThresholds {
  // loss_spike: a step's loss above `spike_factor` times the median of the previous `spike_window`
  // observations and above it by at least `spike_min_rise` (a 3x jump of a loss of 0.01 is noise).
  int64_t spike_window = 10;
  double spike_factor = 3.0;
  double spike_min_rise = 0.1;
  // overfitting: held-out quality at least `quality_drop` below its best (absolute, for accuracies
  // and exact match; relative for eval_loss) at a later evaluation, while the training loss kept falling.
  double quality_drop = 0.05;
  // answers_cut (sft): the share of eval answers cut by the generation limit at an evaluation after
  // step 0 (the untrained start never stops); the sft evaluator warns at any share above 0.
  double hit_limit_high = 0.2;
};

struct SymptomThresholds {
  DpoThresholds dpo;
  RlThresholds rl;
  SupervisedThresholds supervised;
};

// Everything the rules look at: every finite value observed, by key, in observation order.
struct MetricHistory {
  struct Point {
    int64_t step;
    double value;
  };
  struct Heldout {        // one held-out quality measurement (higher is better)
    int64_t step;
    double quality;
    bool has_reward;      // the training reward had a full window at that point
    double reward;        // its windowed end mean then
  };
  std::map<std::string, std::vector<Point>> steps;  // step records
  std::map<std::string, std::vector<Point>> evals;  // evaluation records
  std::vector<Heldout> heldout;
  int64_t observations = 0;                         // step records seen

  const std::vector<Point>* step_series(const std::string& key) const;
  const std::vector<Point>* eval_series(const std::string& key) const;
};

// What a rule's check sees.
struct RuleContext {
  const MetricHistory& history;
  const SymptomThresholds& thresholds;
  const std::string& trainer;        // sft | rm | dpo | grpo | ppo
  int64_t step;                      // the record just observed
  const std::set<std::string>& fired;
};

struct Finding {
  std::string message;
  std::string remedy;
};

enum class Trigger { step, eval };

struct SymptomRule {
  std::string id;
  std::vector<std::string> trainers;  // the trainers whose metrics it reads
  Trigger trigger;                    // checked after step records or after evaluation records
  std::string metrics;                // the keys it reads (docs, `tune doctor --rules`)
  std::string fires_when;             // the condition in words, with the default thresholds
  std::string cause;                  // the practitioners' usual cause
  std::string source;                 // where the rule and its numbers come from
  std::function<std::optional<Finding>(const RuleContext&)> check;
};

// The table, in evaluation order (an earlier rule's firing can silence a later one).
const std::vector<SymptomRule>& symptom_rules();
// The rule with this id, or nullptr.
const SymptomRule* find_rule(const std::string& id);

class SymptomWatcher {
 public:
  explicit SymptomWatcher(std::string trainer, SymptomThresholds thresholds = {});
  // Returns the symptoms first detected by this record.
  std::vector<Symptom> observe(int64_t step, const std::map<std::string, double>& metrics);
  std::vector<Symptom> observe_eval(int64_t step, const std::map<std::string, double>& metrics);
  const std::vector<Symptom>& reported() const { return reported_; }
  const MetricHistory& history() const { return history_; }
  const std::string& trainer() const { return trainer_; }

 private:
  std::vector<Symptom> check(Trigger trigger, int64_t step);
  std::string trainer_;
  SymptomThresholds thresholds_;
  MetricHistory history_;
  std::set<std::string> fired_;
  std::vector<Symptom> reported_;
};

// The metric a trainer's held-out quality is measured by (higher is better): eval_pass@1 for
// grpo / ppo, "" for the others (their rules read the eval series themselves).
std::string heldout_quality_key(const std::string& trainer);

// Least-squares slope of value against step (0 for fewer than two points or a single step).
double slope(const std::vector<std::pair<double, double>>& points);

}  // namespace tune::report

#pragma once
// Training pathologies read from the metric stream, each reported once with its usual remedy
// (practitioner-advice.md, "Symptoms"). DPO:
//   margin_slow       rewards/margins grows slowly  -> beta too high: lower it (or raise lr)
//   chosen_collapse   loss falls fast while logps/chosen falls -> beta too low or lr too high
// The detector only sees numbers, so it is tested with synthetic streams. Torch-free.
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace tune::algo {

struct Symptom {
  std::string id;       // "margin_slow", "chosen_collapse"
  int64_t step = 0;     // the step at which it was detected
  std::string message;  // what the metrics show, with the numbers
  std::string remedy;   // what to change
};

struct DpoSymptomConfig {
  // margin_slow: after `min_steps`, the least-squares slope of rewards/margins over the last
  // `window` observations, extrapolated over `horizon_steps`, stays under `min_margin_gain`,
  // while the margin itself is still below `target_margin`.
  int64_t min_steps = 100;  // not before the warm-up and the first noisy steps are behind
  int64_t window = 20;
  double horizon_steps = 100;
  double min_margin_gain = 0.2;
  double target_margin = 1.0;
  // chosen_collapse: within the run so far the loss fell by at least `fast_loss_drop` (relative
  // to the first observation) in at most `fast_steps` steps, and logps/chosen fell by at least
  // `chosen_drop` nats (per sequence) below its first value.
  int64_t fast_steps = 50;
  double fast_loss_drop = 0.5;
  double chosen_drop = 1.0;
  // chosen_collapse, slow form (a real tiny-model run: loss 0.69 -> 0.60 over 100 steps while
  // logps/chosen went -4.4 -> -11): the mean loss of the last `smooth` observations is below that
  // of the first `smooth`, and mean logps/chosen fell by at least `chosen_relative_drop` times its
  // starting magnitude (1.0: the chosen answers' log-likelihood doubled in magnitude) and by at
  // least `chosen_drop` nats. Means over `smooth` steps keep per-batch noise from firing it.
  int64_t smooth = 10;
  double chosen_relative_drop = 1.0;
};

class DpoSymptomDetector {
 public:
  explicit DpoSymptomDetector(DpoSymptomConfig config = {}) : config_(config) {}
  // Metrics of one step (loss, rewards/margins, logps/chosen; missing keys are ignored).
  // Returns the symptoms first detected at this step.
  std::vector<Symptom> observe(int64_t step, const std::map<std::string, double>& metrics);
  const std::vector<Symptom>& reported() const { return reported_; }

 private:
  struct Point {
    int64_t step;
    double value;
  };
  void report(std::vector<Symptom>& out, Symptom s);
  DpoSymptomConfig config_;
  std::deque<Point> margins_;      // the last `window` observations
  std::vector<Point> losses_;      // every observation (steps are few: one per optimizer step)
  std::vector<Point> chosen_;
  std::set<std::string> seen_;
  std::vector<Symptom> reported_;
};

// Least-squares slope of value against step (0 for fewer than two points or one step).
double slope(const std::vector<std::pair<double, double>>& points);

}  // namespace tune::algo

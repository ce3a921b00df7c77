#pragma once
// KL coefficient controllers of PPO (the weight of the KL penalty in the per-token reward):
//   fixed      beta stays at init                                       (TRL, OpenRLHF, verl default)
//   adaptive   beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon  (Ziegler et al. 2019; verl
//              AdaptiveKLController), KL = the rollout batch's mean per-sequence KL, n = its samples
//   schedule   piecewise constant over training progress: values[k] for the k-th share fractions[k]
//              of training (practitioners: 0.08 / 0.05 / 0.06 over 20% / 60% / 20%)
// Each saves and restores its state as JSON, so a resumed run continues with the same beta.
//
//   auto kl = algo::make_kl_controller(config.kl);       // KlControlConfig, a config section
//   double beta = kl->value();                           // for this rollout's token rewards
//   kl->update(mean_seq_kl, batch_size, (step + 1) / double(total_steps));
//   checkpoint["kl_controller"] = kl->state();  ...  kl->load_state(checkpoint["kl_controller"]);
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/config.h"
#include "tune/core/json.h"

namespace tune::algo {

struct KlControlConfig {
  std::string kind = "fixed";
  double init = 0.05;       // fixed value and adaptive start (TRL PPO 0.05)
  double target = 6.0;      // adaptive: target mean KL per sequence in nats (Ziegler 6; verl target_kl 0.1)
  double horizon = 10000;   // adaptive: samples over which a full error is corrected (Ziegler, verl 10000)
  std::vector<double> values;     // schedule: beta per phase
  std::vector<double> fractions;  // schedule: share of training per phase, summing to 1
  template <class V>
  void visit(V& v) {
    v("kind", kind, "fixed | adaptive | schedule", config::one_of({"fixed", "adaptive", "schedule"}));
    v("init", init, "KL coefficient (fixed) or its starting value (adaptive)", config::at_least(0.0));
    v("target", target, "adaptive: target mean KL per sequence (nats)", config::greater_than(0.0));
    v("horizon", horizon, "adaptive: samples over which the KL error is corrected", config::greater_than(0.0));
    v("values", values, "schedule: KL coefficient of each phase");
    v("fractions", fractions, "schedule: share of training of each phase (sum 1)");
  }
};

class KlController {
 public:
  virtual ~KlController() = default;
  virtual std::string_view kind() const = 0;
  double value() const { return value_; }
  // After a rollout batch: its mean per-sequence KL (summed over the tokens of a completion, averaged
  // over completions), the number of completions in it, and the training progress after it in [0, 1].
  virtual void update(double observed_kl, int64_t samples, double progress) = 0;
  // {"kind": ..., "value": ..., "progress": ...}; load_state throws tune::Error on another kind.
  Json state() const;
  void load_state(const Json& state);

 protected:
  explicit KlController(double value) : value_(value) {}
  double value_;
  double progress_ = 0;
};

class FixedKlController : public KlController {
 public:
  explicit FixedKlController(double value);
  std::string_view kind() const override { return "fixed"; }
  void update(double observed_kl, int64_t samples, double progress) override;
};

class AdaptiveKlController : public KlController {
 public:
  AdaptiveKlController(double init, double target, double horizon);
  std::string_view kind() const override { return "adaptive"; }
  void update(double observed_kl, int64_t samples, double progress) override;

 private:
  double target_, horizon_;
};

class ScheduledKlController : public KlController {
 public:
  ScheduledKlController(std::vector<double> values, std::vector<double> fractions);
  std::string_view kind() const override { return "schedule"; }
  void update(double observed_kl, int64_t samples, double progress) override;
  double value_at(double progress) const;

 private:
  std::vector<double> values_, ends_;  // ends_[k]: cumulative share where phase k ends
};

// Validates the section (UsageError naming the key) and builds its controller.
std::unique_ptr<KlController> make_kl_controller(const KlControlConfig& config);

}  // namespace tune::algo

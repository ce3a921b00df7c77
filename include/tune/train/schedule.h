#pragma once
// Learning-rate schedules as pure functions of the optimizer step, the transformers conventions:
// the step-th optimizer update (0-based) uses lr_at(step); with warmup, step 0 uses lr 0.
#include <cstdint>
#include <string_view>

namespace tune::train {

enum class ScheduleKind { constant, linear, cosine };

// "constant" | "linear" | "cosine"; UsageError otherwise.
ScheduleKind parse_schedule_kind(std::string_view name);
std::string_view schedule_kind_name(ScheduleKind kind);

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::linear;  // transformers' default lr_scheduler_type
  int64_t warmup_steps = 0;                  // wins over warmup_ratio when > 0
  double warmup_ratio = 0.0;                 // warmup = ceil(total_steps * ratio), as transformers
  double min_lr_ratio = 0.0;                 // the decay ends at base_lr * min_lr_ratio
};

class LrSchedule {
 public:
  LrSchedule(const ScheduleConfig& config, double base_lr, int64_t total_steps);

  double lr_at(int64_t step) const { return base_lr_ * factor_at(step); }
  double factor_at(int64_t step) const;

  double base_lr() const { return base_lr_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }
  const ScheduleConfig& config() const { return config_; }

 private:
  ScheduleConfig config_;
  double base_lr_;
  int64_t total_steps_;
  int64_t warmup_steps_;
};

}  // namespace tune::train

#include "tune/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "tune/core/error.h"

namespace tune::train {

ScheduleKind parse_schedule_kind(std::string_view name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine") return ScheduleKind::cosine;
  usage_fail("unknown learning-rate schedule '", name, "' (expected constant, linear or cosine)");
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::linear: return "linear";
    case ScheduleKind::cosine: return "cosine";
  }
  return "?";
}

LrSchedule::LrSchedule(const ScheduleConfig& config, double base_lr, int64_t total_steps)
    : config_(config), base_lr_(base_lr), total_steps_(total_steps) {
  if (!(base_lr >= 0)) usage_fail("learning rate must be >= 0, got ", base_lr);
  if (total_steps < 1) usage_fail("the schedule needs at least one training step, got ", total_steps);
  if (config.warmup_steps < 0) usage_fail("warmup_steps must be >= 0, got ", config.warmup_steps);
  if (!(config.warmup_ratio >= 0 && config.warmup_ratio <= 1))
    usage_fail("warmup_ratio must be in [0, 1], got ", config.warmup_ratio);
  if (!(config.min_lr_ratio >= 0 && config.min_lr_ratio <= 1))
    usage_fail("min_lr_ratio must be in [0, 1], got ", config.min_lr_ratio);
  warmup_steps_ = config.warmup_steps > 0
                      ? config.warmup_steps
                      : static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * config.warmup_ratio));
}

// The transformers formulas (optimization.py), with s = step, W = warmup, N = total steps:
//   warmup (s < W):  s / max(1, W)
//   constant:        1
//   linear:          max(0, (N - s) / max(1, N - W))
//   cosine:          0.5 * (1 + cos(pi * p)),  p = (s - W) / max(1, N - W)   (num_cycles = 0.5)
// and min_lr_ratio m maps a decay factor f to m + (1 - m) * f, as cosine_with_min_lr does
// (transformers has no min for linear; with m = 0 both are unchanged). p is clamped to [0, 1] so a
// step past the end stays at the minimum instead of climbing the next cosine half-wave.
double LrSchedule::factor_at(int64_t step) const {
  step = std::max<int64_t>(step, 0);
  if (step < warmup_steps_) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps_));
  const double m = config_.min_lr_ratio;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps_ - warmup_steps_));
  switch (config_.kind) {
    case ScheduleKind::constant:
      return 1.0;
    case ScheduleKind::linear: {
      double f = std::max(0.0, static_cast<double>(total_steps_ - step) / span);
      return m + (1 - m) * f;
    }
    case ScheduleKind::cosine: {
      double p = std::clamp(static_cast<double>(step - warmup_steps_) / span, 0.0, 1.0);
      double f = 0.5 * (1.0 + std::cos(std::numbers::pi * p));
      return m + (1 - m) * f;
    }
  }
  return 1.0;
}

}  // namespace tune::train

#pragma once
// Checkpoints that continue a run exactly: trainable parameters by name, optimizer state, stepper
// counters (the schedule is a function of the step), RNG states (torch CPU [+ CUDA] generators and
// the data-shuffling engine), the data position and the metrics so far (opaque Json from the caller).
//
// Layout of <run>/checkpoint-<step>/:
//   parameters.pt   trainable tensors (torch archive, keys p0, p1, ... in state.json's order)
//   optimizer.pt    torch::optim state
//   rng.pt          torch generator states
//   state.json      step, names, stepper, shuffle RNG, data position, metrics, eval metric
// Written into <run>/checkpoint-<step>.tmp-<pid>-<n>/, every file fsynced, then renamed: a crash
// leaves either no checkpoint-<step> or a complete one. <run>/latest names the newest complete one;
// <run>/checkpoints.json keeps the list, their eval metric and the best.
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "tune/core/json.h"
#include "tune/train/optimizer.h"

namespace tune::train {

class Stepper;

// What a checkpoint saves and fills back in. Tensors and objects are referenced, not owned: load
// copies into them in place, so build the model/optimizer/stepper first, then load.
struct TrainingState {
  NamedParameters parameters;                      // trainable ones, by name
  torch::optim::Optimizer* optimizer = nullptr;
  Stepper* stepper = nullptr;
  std::mt19937_64* shuffle_rng = nullptr;          // the data sampler's engine, if any
  Json data_position;                              // sampler position (opaque), restored on load
  Json metrics;                                    // metrics so far (opaque), restored on load
};

struct CheckpointPolicy {
  int keep_last = 2;               // complete checkpoints kept besides the best; <= 0 keeps all
  std::string metric_name;         // eval metric that picks the best ("" = none)
  bool greater_is_better = false;  // e.g. true for accuracy, false for eval loss
};

class CheckpointManager {
 public:
  // Cleans up after interrupted saves (checkpoint-*.tmp-*) in run_dir: a complete leftover whose
  // checkpoint-<step> is missing (a crash while replacing it) is renamed back into place; the rest
  // are removed.
  CheckpointManager(std::filesystem::path run_dir, CheckpointPolicy policy = {});

  // Saves at state.stepper's step (or `step` when there is no stepper); returns the final directory.
  std::filesystem::path save(const TrainingState& state, std::optional<double> eval_metric = std::nullopt,
                             std::optional<int64_t> step = std::nullopt);
  // Restores everything into `state`; the names and shapes of the parameters must match.
  void load(const std::filesystem::path& checkpoint_dir, TrainingState& state) const;

  std::optional<std::filesystem::path> latest() const;  // newest complete checkpoint
  std::optional<std::filesystem::path> best() const;    // best by the eval metric
  const std::filesystem::path& run_dir() const { return run_dir_; }

  // Test hook: called after each stage of save() ("parameters", "optimizer", "rng", "state",
  // "renamed"); a throwing hook simulates a failure at that point.
  std::function<void(std::string_view stage)> on_save_stage;

 private:
  Json read_index() const;
  void prune(Json& index) const;

  std::filesystem::path run_dir_;
  CheckpointPolicy policy_;
};

// The default torch CPU generator's state as bytes, and back (also used for CUDA generators).
torch::Tensor cpu_rng_state();
void set_cpu_rng_state(const torch::Tensor& state);
std::string engine_state(const std::mt19937_64& engine);
void set_engine_state(std::mt19937_64& engine, const std::string& state);

}  // namespace tune::train

#pragma once
// What every training command does around its loop: the run directory (resolved config, manifest),
// metrics.jsonl, the progress line, checkpoints and resume.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tune/algo/sections.h"
#include "tune/core/json.h"
#include "tune/report/tensorboard.h"
#include "tune/train/checkpoint.h"
#include "tune/train/metrics.h"
#include "tune/train/run_dir.h"
#include "tune/train/stepper.h"

namespace tune::algo {

// Under data parallelism every rank constructs its Run; rank 0 alone writes (the others resume from
// the same checkpoint and compare their weights with rank 0's at every save).
class Run {
 public:
  // Creates output_dir, writes config.json + manifest.json, opens metrics.jsonl.
  // log.tensorboard: every record's numbers also go to TensorBoard event files in output_dir.
  Run(const std::filesystem::path& output_dir, const Json& resolved_config, const std::vector<train::ManifestFile>& files,
      const LoopSection& loop, int64_t total_steps, train::CheckpointPolicy policy, const LogSection& log = {});
  ~Run();

  // resume: "" = fresh start; "auto" = latest checkpoint of output_dir (fresh when none); else a
  // checkpoint directory. Loads into `state`; returns the step resumed from.
  int64_t resume(const std::string& resume, train::TrainingState& state);

  // Metrics record (also gets "step"); on a resumed run, records past the checkpoint are dropped once.
  // Its numbers also go to TensorBoard with log.tensorboard (symptom records stay in metrics.jsonl).
  void log(int64_t step, Json record);
  // Appends complete lines to <output_dir>/samples.jsonl (completions the report shows), flushed.
  void log_samples(const std::vector<Json>& samples);
  void progress(int64_t step, double loss, double lr, int64_t tokens);
  bool due(int64_t step, int64_t every) const { return every > 0 && step % every == 0; }
  std::filesystem::path save(const train::TrainingState& state, int64_t step, std::optional<double> metric);
  void finish();

  const std::filesystem::path& dir() const { return dir_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  std::filesystem::path dir_;
  int64_t total_steps_;
  LoopSection loop_;
  train::CheckpointManager checkpoints_;
  std::unique_ptr<train::MetricsWriter> metrics_;
  LogSection log_;
  std::unique_ptr<report::TensorBoardWriter> tensorboard_;
  std::unique_ptr<train::ProgressPrinter> progress_;
  bool main_;  // rank 0 of a data-parallel job (or the only process): the one that writes
};

// Before anything is loaded: a fresh run (resume "") may only start in a missing or empty
// directory. A non-empty one is a usage error naming --resume and --overwrite; with `overwrite` an
// earlier run directory (one with a manifest.json or config.json) is removed (unless dry_run), any
// other non-empty directory is refused.
void claim_output_dir(const std::filesystem::path& dir, const std::string& resume, bool overwrite, bool dry_run);

// Peak memory in bytes: of the CUDA caching allocator on a CUDA device, else this process's peak
// resident set.
uint64_t peak_memory_bytes(const torch::Device& device);

}  // namespace tune::algo

#include "tune/algo/run.h"

#include <sys/resource.h>
#include <torch/torch.h>

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::algo {

Run::Run(const std::filesystem::path& output_dir, const Json& resolved_config, const std::vector<train::ManifestFile>& files,
         const LoopSection& loop, int64_t total_steps, train::CheckpointPolicy policy)
    : dir_(output_dir), total_steps_(total_steps), loop_(loop), checkpoints_(output_dir, std::move(policy)) {
  train::write_run_directory(dir_, resolved_config, files);
  train::ProgressPrinter::Options options;
  options.total_steps = total_steps;
  options.every_n = loop.log_every;
  progress_ = std::make_unique<train::ProgressPrinter>(options);
}

int64_t Run::resume(const std::string& resume, train::TrainingState& state) {
  std::optional<std::filesystem::path> from;
  if (resume == "auto") {
    from = checkpoints_.latest();
    if (!from) log::info("resume: no checkpoint in ", dir_.string(), " yet, starting fresh");
  } else if (!resume.empty()) {
    from = resume;
    if (!std::filesystem::exists(*from)) usage_fail("resume: checkpoint directory not found: ", resume);
  }
  int64_t step = 0;
  if (from) {
    checkpoints_.load(*from, state);
    step = state.stepper ? state.stepper->steps_done() : 0;
    log::info("resumed from ", from->string(), " at step ", step);
  }
  metrics_ = std::make_unique<train::MetricsWriter>(dir_ / "metrics.jsonl",
                                                    from ? std::optional<int64_t>(step) : std::nullopt);
  return step;
}

void Run::log(int64_t step, Json record) {
  TUNE_CHECK(metrics_, "Run::log before Run::resume");
  Json out = {{"step", step}};
  for (auto it = record.begin(); it != record.end(); ++it) out[it.key()] = it.value();
  metrics_->write(out);
}

void Run::progress(int64_t step, double loss, double lr, int64_t tokens) { progress_->update(step, loss, lr, tokens); }

std::filesystem::path Run::save(const train::TrainingState& state, int64_t step, std::optional<double> metric) {
  return checkpoints_.save(state, metric, step);
}

void Run::finish() { progress_->finish(); }

uint64_t peak_memory_bytes(bool cuda) {
  (void)cuda;  // CUDA peak memory is reported by the GPU path (kernels issue)
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace tune::algo

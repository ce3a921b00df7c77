#include "tune/algo/run.h"

#include <sys/resource.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <torch/torch.h>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/report/run_data.h"
#include "tune/train/communicator.h"
#include "tune/train/optimizer.h"

namespace tune::algo {

Run::Run(const std::filesystem::path& output_dir, const Json& resolved_config, const std::vector<train::ManifestFile>& files,
         const LoopSection& loop, int64_t total_steps, train::CheckpointPolicy policy, const LogSection& log)
    : dir_(output_dir), total_steps_(total_steps), loop_(loop), checkpoints_(output_dir, std::move(policy)), log_(log),
      main_(train::world().is_main()) {
  // Data parallelism: rank 0 alone writes the run directory, metrics, checkpoints and progress.
  train::on_main_rank(train::world(), "writing the run directory",
                      [&] { train::write_run_directory(dir_, resolved_config, files); });
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
    if (state.stepper) state.stepper->release_foreign_optimizer_state();  // ZeRO-1: keep this rank's share
    step = state.stepper ? state.stepper->steps_done() : 0;
    log::info("resumed from ", from->string(), " at step ", step);
  }
  if (!main_) return step;
  // A fresh start (claim_output_dir let it in: the directory was empty, replaced, or an "auto" resume
  // found no checkpoint) must not append to records of an earlier attempt.
  if (!from) {
    std::filesystem::remove(dir_ / "metrics.jsonl");
    std::filesystem::remove(dir_ / "samples.jsonl");
    report::remove_event_files(dir_);
  }
  metrics_ = std::make_unique<train::MetricsWriter>(dir_ / "metrics.jsonl",
                                                    from ? std::optional<int64_t>(step) : std::nullopt);
  // A resumed run starts a TensorBoard session at its step: TensorBoard drops what an earlier
  // attempt logged past it, as metrics.jsonl does.
  if (log_.tensorboard)
    tensorboard_ = std::make_unique<report::TensorBoardWriter>(dir_, from ? std::optional<int64_t>(step) : std::nullopt);
  return step;
}

Run::~Run() = default;

void Run::log(int64_t step, Json record) {
  if (!main_) return;
  TUNE_CHECK(metrics_, "Run::log before Run::resume");
  Json out = {{"step", step}};
  for (auto it = record.begin(); it != record.end(); ++it) out[it.key()] = it.value();
  metrics_->write(out);
  if (tensorboard_ && !out.contains("symptom")) {
    std::map<std::string, double> scalars;
    for (auto it = out.begin(); it != out.end(); ++it)
      if (it.key() != "step" && it.value().is_number()) scalars[it.key()] = it.value().get<double>();
    tensorboard_->add_scalars(step, scalars);
  }
}

void Run::log_samples(const std::vector<Json>& samples) {
  if (!main_) return;
  report::append_json_lines(dir_ / "samples.jsonl", samples);
}

void Run::progress(int64_t step, double loss, double lr, int64_t tokens) {
  if (main_) progress_->update(step, loss, lr, tokens);
}

std::filesystem::path Run::save(const train::TrainingState& state, int64_t step, std::optional<double> metric) {
  // Every rank must hold what rank 0 saves: the ranks' weights are compared before it does.
  train::verify_equal(train::world(), train::parameter_tensors(state.parameters), "checkpoint");
  std::filesystem::path saved;
  if (state.stepper) state.stepper->gather_optimizer_state();  // ZeRO-1: rank 0 saves every rank's share
  train::on_main_rank(train::world(), "saving the checkpoint", [&] { saved = checkpoints_.save(state, metric, step); });
  if (state.stepper) state.stepper->release_foreign_optimizer_state();
  return saved;
}

void Run::finish() {
  if (main_) progress_->finish();
}

namespace {

void claim_on_this_rank(const std::filesystem::path& dir, const std::string& resume, bool overwrite, bool dry_run) {
  namespace stdfs = std::filesystem;
  if (!stdfs::exists(dir)) return;
  if (!stdfs::is_directory(dir)) usage_fail("output_dir ", dir.string(), " exists and is not a directory");
  if (stdfs::is_empty(dir) || !resume.empty()) return;
  const bool is_run = stdfs::exists(dir / "manifest.json") || stdfs::exists(dir / "config.json");
  if (!overwrite) {
    std::vector<std::string> held;
    for (const char* name : {"final", "latest", "metrics.jsonl", "manifest.json"})
      if (stdfs::exists(dir / name)) held.push_back(name);
    usage_fail("output_dir ", dir.string(), " is not empty", held.empty() ? std::string() : str(" (", join(held, ", "), ")"),
               ": pass --resume to continue that run, --overwrite to replace it, or choose another --output-dir");
  }
  if (!is_run)
    usage_fail("output_dir ", dir.string(), " is not empty and holds no tune run (no manifest.json): --overwrite only "
               "replaces run directories; choose another --output-dir");
  if (dry_run) {
    log::info("dry run: ", dir.string(), " would be replaced (--overwrite)");
    return;
  }
  log::warn("--overwrite: removing the earlier run in ", dir.string());
  std::error_code ec;
  stdfs::remove_all(dir, ec);
  if (ec) fail("cannot remove ", dir.string(), " for --overwrite: ", ec.message());
}

}  // namespace

void claim_output_dir(const std::filesystem::path& dir, const std::string& resume, bool overwrite, bool dry_run) {
  // Rank 0 decides (and removes, with --overwrite): ranks sharing a file system must not race.
  train::on_main_rank(train::world(), "claiming the output directory",
                      [&] { claim_on_this_rank(dir, resume, overwrite, dry_run); });
}

uint64_t peak_memory_bytes(const torch::Device& device) {
  if (device.is_cuda()) {
    // The caching allocator's peak of allocated bytes on that device (what the tensors needed), as
    // torch.cuda.max_memory_allocated reports it; host RSS says nothing about GPU memory.
    auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(device.index());
    return static_cast<uint64_t>(
        stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace tune::algo

#pragma once
// Training metrics: JSON lines in <run>/metrics.jsonl, and a one-line progress display on stderr.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "tune/core/json.h"

namespace tune::train {

// Appends one JSON object per line and flushes it, so a crash loses at most the line being written.
class MetricsWriter {
 public:
  // resume_step: records with "step" > resume_step (logged after the checkpoint a resumed run
  // starts from) are dropped first, so the file does not hold two histories for the same steps.
  explicit MetricsWriter(std::filesystem::path path, std::optional<int64_t> resume_step = std::nullopt);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const Json& record);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// "step 12/200 | loss 1.234 | lr 2.0e-05 | 1.2k tok/s | ETA 3m10s"
std::string format_progress(int64_t step, int64_t total_steps, double loss, double lr, double tokens_per_second,
                            double eta_seconds);

// Prints format_progress lines: rewritten in place with \r on a terminal, otherwise one plain line
// every `every_n` steps (and on the last step). Rates are measured from the first update on.
class ProgressPrinter {
 public:
  struct Options {
    int64_t total_steps = 0;
    int64_t every_n = 10;               // plain-line interval when not a terminal
    std::FILE* out = stderr;
    std::optional<bool> is_terminal;    // default: isatty(out)
  };
  explicit ProgressPrinter(Options options);

  void update(int64_t step, double loss, double lr, int64_t tokens_this_step);
  void finish();  // ends the \r line with a newline

 private:
  using Clock = std::chrono::steady_clock;
  Options options_;
  bool tty_;
  bool started_ = false;
  bool line_open_ = false;
  Clock::time_point start_;
  int64_t start_step_ = 0;
  int64_t tokens_ = 0;
};

}  // namespace tune::train

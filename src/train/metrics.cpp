#include "tune/train/metrics.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/str.h"

namespace tune::train {

namespace stdfs = std::filesystem;

namespace {

// Keeps the lines whose "step" is at most resume_step (and any line without a step).
void drop_records_after(const stdfs::path& path, int64_t resume_step) {
  if (!stdfs::exists(path)) return;
  std::string kept;
  for (const auto& line : split(fs::read_file(path), '\n')) {
    if (trim(line).empty()) continue;
    Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A torn last line (crash mid-write) is dropped too.
    if (record.is_discarded()) continue;
    if (record.is_object() && record.contains("step") && record["step"].is_number() &&
        record["step"].get<double>() > static_cast<double>(resume_step))
      continue;
    kept += line;
    kept += '\n';
  }
  fs::write_file_atomic(path, kept);
}

}  // namespace

MetricsWriter::MetricsWriter(stdfs::path path, std::optional<int64_t> resume_step) : path_(std::move(path)) {
  if (path_.has_parent_path()) fs::ensure_directory(path_.parent_path());
  if (resume_step) drop_records_after(path_, *resume_step);
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) fail("cannot open ", path_.string(), " for appending: ", std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(const Json& record) {
  // NaN/inf are not JSON; dump() writes them as null, which readers handle.
  std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    fail("cannot write to ", path_.string(), ": ", std::strerror(errno));
}

std::string format_progress(int64_t step, int64_t total_steps, double loss, double lr, double tokens_per_second,
                            double eta_seconds) {
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%.1e", lr);
  std::string out = tune::str("step ", step, "/", total_steps, " | loss ", std::isfinite(loss) ? fixed(loss, 3) : "nan",
                              " | lr ", lr_text);
  if (tokens_per_second > 0) out += tune::str(" | ", human_count(tokens_per_second), " tok/s");
  if (std::isfinite(eta_seconds) && eta_seconds >= 0) out += tune::str(" | ETA ", human_duration(eta_seconds));
  return out;
}

ProgressPrinter::ProgressPrinter(Options options)
    : options_(options), tty_(options.is_terminal ? *options.is_terminal : ::isatty(::fileno(options.out)) != 0) {
  if (options_.every_n < 1) options_.every_n = 1;
}

void ProgressPrinter::update(int64_t step, double loss, double lr, int64_t tokens_this_step) {
  auto now = Clock::now();
  if (!started_) {
    // Rates are measured from the end of the first step seen (a resumed run does not count the
    // steps before it, and the first step's own duration is unknown).
    started_ = true;
    start_ = now;
    start_step_ = step;
    tokens_ = 0;
  } else {
    tokens_ += tokens_this_step;
  }
  double elapsed = std::chrono::duration<double>(now - start_).count();
  int64_t done = step - start_step_;
  double tok_s = elapsed > 0 ? static_cast<double>(tokens_) / elapsed : 0;
  double eta = (done > 0 && elapsed > 0) ? elapsed / static_cast<double>(done) * static_cast<double>(options_.total_steps - step)
                                         : NAN;
  std::string line = format_progress(step, options_.total_steps, loss, lr, tok_s, eta);
  if (tty_) {
    std::fprintf(options_.out, "\r%s\033[K", line.c_str());  // \033[K clears what a longer line left
    line_open_ = true;
  } else if (step % options_.every_n == 0 || step == options_.total_steps) {
    std::fprintf(options_.out, "%s\n", line.c_str());
  }
  std::fflush(options_.out);
}

void ProgressPrinter::finish() {
  if (line_open_) {
    std::fputc('\n', options_.out);
    std::fflush(options_.out);
    line_open_ = false;
  }
}

}  // namespace tune::train

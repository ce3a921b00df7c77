#include "tune/report/run_data.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/str.h"

namespace tune::report {

namespace stdfs = std::filesystem;

std::vector<Json> read_json_lines(const stdfs::path& path) {
  const std::string text = fs::read_file(path);
  std::vector<Json> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    const bool complete = end != std::string::npos;
    if (!complete) end = text.size();
    ++line_no;
    const std::string_view line = trim(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    Json value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
      if (!complete) break;  // the record a running trainer is writing
      fail(path.string(), ":", line_no, ": invalid JSON (", line.substr(0, 60), line.size() > 60 ? "..." : "", ")");
    }
    if (!value.is_object()) fail(path.string(), ":", line_no, ": expected a JSON object, got ", value.type_name());
    out.push_back(std::move(value));
  }
  return out;
}

void append_json_lines(const stdfs::path& path, const std::vector<Json>& lines) {
  if (lines.empty()) return;
  std::string text;
  for (const auto& l : lines) text += l.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  if (path.has_parent_path()) fs::ensure_directory(path.parent_path());
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) fail("cannot open ", path.string(), " for appending: ", std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
  std::fclose(f);
  if (!ok) fail("cannot write to ", path.string(), ": ", std::strerror(errno));
}

std::string trainer_of(const Json& config) {
  if (!config.is_object()) return "";
  for (const char* algo : {"dpo", "grpo", "ppo", "rm"})
    if (config.contains(algo) && config[algo].is_object()) return algo;
  if (config.contains("optim") && config.contains("train") && config.contains("data")) return "sft";
  return "";
}

int64_t RunData::last_step() const {
  int64_t last = 0;
  for (const auto& r : records) last = std::max(last, r.step);
  return last;
}

namespace {

bool is_eval_record(const Json& record) {
  for (auto it = record.begin(); it != record.end(); ++it)
    if (it.key().rfind("eval_", 0) == 0) return true;
  return false;
}

void read_metrics(RunData& run, const stdfs::path& path) {
  int64_t index = 0;
  for (const Json& rec : read_json_lines(path)) {
    ++index;
    if (!rec.contains("step") || !rec["step"].is_number())
      fail(path.string(), ": record ", index, " has no numeric \"step\" (", rec.dump().substr(0, 60), ")");
    const auto step = rec["step"].get<int64_t>();
    if (rec.contains("symptom")) {
      run.symptoms.push_back({step, rec.value("symptom", ""), rec.value("message", ""), rec.value("remedy", "")});
      continue;
    }
    RunRecord r;
    r.step = step;
    r.eval = is_eval_record(rec);
    for (auto it = rec.begin(); it != rec.end(); ++it) {
      // Numbers, and booleans as 0 / 1 (policy_frozen); null (a NaN written out) and strings are left out.
      if (it.key() == "step" || !(it.value().is_number() || it.value().is_boolean())) continue;
      const double v = it.value().is_boolean() ? (it.value().get<bool>() ? 1.0 : 0.0) : it.value().get<double>();
      r.metrics[it.key()] = v;
      Series& s = (r.eval ? run.eval : run.train)[it.key()];
      s.steps.push_back(step);
      s.values.push_back(v);
    }
    run.records.push_back(std::move(r));
  }
}

void read_checkpoints(RunData& run, const stdfs::path& path) {
  const Json index = read_json_file(path);
  run.checkpoint_metric = index.value("metric_name", "");
  run.greater_is_better = index.value("greater_is_better", false);
  const std::string best = index.contains("best") && index["best"].is_string() ? index["best"].get<std::string>() : "";
  if (!index.contains("checkpoints") || !index["checkpoints"].is_array()) return;
  for (const auto& c : index["checkpoints"]) {
    if (!c.is_object()) fail(path.string(), ": a checkpoint entry is not an object");
    CheckpointInfo info;
    info.step = c.value("step", int64_t{0});
    info.dir = c.value("dir", "");
    if (c.contains("metric") && c["metric"].is_number()) info.metric = c["metric"].get<double>();
    info.best = !best.empty() && info.dir == best;
    run.checkpoints.push_back(std::move(info));
  }
}

}  // namespace

RunData read_run(const stdfs::path& dir) {
  if (!stdfs::is_directory(dir)) usage_fail("run directory ", dir.string(), " does not exist or is not a directory");
  RunData run;
  run.dir = dir;
  run.name = stdfs::absolute(dir).lexically_normal().filename().string();
  if (run.name.empty()) run.name = stdfs::absolute(dir).lexically_normal().parent_path().filename().string();
  const stdfs::path metrics = dir / "metrics.jsonl";
  if (!stdfs::is_regular_file(metrics))
    usage_fail(dir.string(), " holds no metrics.jsonl: not a tune run directory, or its training has not started");
  if (stdfs::is_regular_file(dir / "config.json")) run.config = read_json_file(dir / "config.json");
  if (stdfs::is_regular_file(dir / "manifest.json")) run.manifest = read_json_file(dir / "manifest.json");
  read_metrics(run, metrics);
  if (stdfs::is_regular_file(dir / "checkpoints.json")) read_checkpoints(run, dir / "checkpoints.json");
  if (stdfs::is_regular_file(dir / "samples.jsonl")) run.samples = read_json_lines(dir / "samples.jsonl");
  run.trainer = trainer_of(run.config);
  if (run.trainer.empty()) {
    // No (readable) config: tell the trainer by its metrics.
    if (run.train.count("rewards/margins")) run.trainer = "dpo";
    else if (run.train.count("value/loss") || run.train.count("kl_coef")) run.trainer = "ppo";
    else if (run.train.count("reward")) run.trainer = "grpo";
    else if (run.train.count("accuracy")) run.trainer = "rm";
    else run.trainer = "sft";
  }
  return run;
}

}  // namespace tune::report

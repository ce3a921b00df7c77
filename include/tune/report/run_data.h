#pragma once
// A run directory as `tune report` and `tune doctor` read it, finished or still running:
//   config.json       the resolved configuration (its sections say which trainer wrote it)
//   manifest.json     creation time, versions, input files (optional)
//   metrics.jsonl     one JSON object per line: step records, evaluation records (eval_* keys) and
//                     the watcher's symptom records ({"step", "symptom", "message", "remedy"})
//   checkpoints.json  the checkpoints kept, their eval metric and the best (optional)
//   samples.jsonl     completions with their step and kind ("train", "eval") (optional)
// Every problem names the file and line. A last line without its newline is a record being
// written by a running trainer and is skipped. Torch-free.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"

namespace tune::report {

struct Series {
  std::vector<int64_t> steps;
  std::vector<double> values;
  size_t size() const { return steps.size(); }
};

struct RunRecord {
  int64_t step = 0;
  bool eval = false;                      // an evaluation record (it has eval_* keys)
  std::map<std::string, double> metrics;  // its numeric fields (not "step"; null, strings and booleans left out)
};

struct LoggedSymptom {
  int64_t step = 0;
  std::string id, message, remedy;
};

struct CheckpointInfo {
  int64_t step = 0;
  std::string dir;
  std::optional<double> metric;
  bool best = false;
};

struct RunData {
  std::filesystem::path dir;
  std::string name;                         // the directory's name
  std::string trainer;                      // sft | rm | dpo | grpo | ppo
  Json config = Json::object();
  Json manifest = Json::object();
  std::vector<RunRecord> records;           // metrics.jsonl in file order, symptom records left out
  std::map<std::string, Series> train;      // step records by key
  std::map<std::string, Series> eval;       // evaluation records by key
  std::vector<LoggedSymptom> symptoms;      // what the live watcher raised
  std::string checkpoint_metric;            // "" when the run had no eval metric
  bool greater_is_better = false;
  std::vector<CheckpointInfo> checkpoints;
  std::vector<Json> samples;                // samples.jsonl objects
  int64_t last_step() const;                // the largest step of any record (0 when none)
};

// Reads `dir`. Usage error when it is not a directory or holds no metrics.jsonl.
RunData read_run(const std::filesystem::path& dir);

// The trainer of a resolved configuration: its algorithm section (dpo, grpo, ppo, rm), else sft
// when it has the sections every trainer has; "" when it is no tune training config.
std::string trainer_of(const Json& config);

// Reads a JSON-lines file: one object per non-blank line. A malformed line is an error naming
// `path:line`, except a last line without its newline (a record being written), which is skipped.
std::vector<Json> read_json_lines(const std::filesystem::path& path);

// Appends one line per object (NaN written as null) and flushes: a crash loses no earlier line.
// Used for samples.jsonl, which grows while the run goes on (like metrics.jsonl, not rewritten).
void append_json_lines(const std::filesystem::path& path, const std::vector<Json>& lines);

}  // namespace tune::report

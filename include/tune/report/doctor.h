#pragma once
// `tune doctor`: what is wrong with a run, or with a configuration before it runs.
//   diagnose_run     the symptoms the live watcher logged, plus the table's rules replayed on
//                    metrics.jsonl (for runs watched by an older tune or with the watcher off), and
//                    the smells of the run's config.json
//   diagnose_config  config smells: RL (and DPO) lr not below the lr of the SFT run that made the
//                    model, DPO beta outside the usual range, unusual LoRA rank / alpha, no eval
//                    set, an eval generation limit below the reference answers, an RL batch too small
// Every finding says its evidence, the likely cause, the remedy and where its threshold comes from.
// Torch-free.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/report/run_data.h"

namespace tune::report {

struct Diagnosis {
  std::string kind;               // "symptom" | "config"
  std::string id;                 // rule id ("chosen_collapse", "dpo_beta", ...)
  std::string severity;           // "warning" | "note"
  std::optional<int64_t> step;    // symptoms: where it was detected
  std::string evidence;           // what was seen, with the numbers
  std::string cause;
  std::string remedy;
  std::string source;             // where the rule / threshold comes from
  std::string origin;             // "watcher" (logged live), "doctor" (replayed), "config"
};

// What a config check needs beyond the config itself, found on disk by config_context().
struct ConfigContext {
  std::optional<Json> source_run_config;      // config.json of the tune run whose output is model.path
  std::string source_run_dir;
  std::optional<int64_t> longest_reference;   // tokens of the longest eval reference answer
  std::vector<std::string> notes;             // what could not be checked, and why
};

// Looks for the run that made model.path (a tune run directory holding it as final/ or a
// checkpoint, or the model config's directory recorded in `manifest`), and measures the eval
// reference answers with the model's tokenizer. Paths relative to `base` (the directory the
// config's relative paths are relative to). Never throws for missing files: they become notes.
ConfigContext config_context(const Json& config, const std::string& trainer, const std::filesystem::path& base,
                             const Json& manifest = Json::object());

std::vector<Diagnosis> diagnose_config(const Json& config, const std::string& trainer, const ConfigContext& context);

struct RunDiagnosis {
  std::string trainer;
  int64_t records = 0;              // metrics records read (symptom records left out)
  int64_t last_step = 0;
  std::vector<Diagnosis> findings;  // symptoms (by step), then config smells
  std::vector<std::string> notes;
};

// base: where the run's relative paths (model.path, data) are resolved; default: the current directory.
RunDiagnosis diagnose_run(const RunData& run, const std::filesystem::path& base = ".");

// Text for the terminal: one block per finding, or a line saying the run looks healthy.
std::string format_run_diagnosis(const RunData& run, const RunDiagnosis& d);
std::string format_config_diagnosis(const std::string& what, const std::string& trainer, const ConfigContext& context,
                                    const std::vector<Diagnosis>& findings);

// The rules table as text (`tune doctor --rules`).
std::string format_rules();

}  // namespace tune::report

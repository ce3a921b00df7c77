#pragma once
// The `reward:` config section and the factory that builds its composite. In YAML:
//
//   reward:
//     terms:
//       - {name: correct, kind: answer_match, weight: 1.0, extract: last_number}
//       - {kind: format, pattern: "^\\d+$", weight: 0.1}
//       - {kind: program, command: "python3 judge.py", timeout_s: 30}
//       - {kind: model, path: runs/rm/final, normalize: stats, weight: 0.5}
//
// or, for one program, `reward: {command: "python3 my_reward.py"}`. Each term has `kind`, `name`
// (default: the kind; logged as reward/<name>), `weight` (default 1) and the options of its kind
// (see rules.h, program.h); an option of another kind is an unknown key. Torch-free: kind `model`
// is built by a factory the caller passes (algo::build_reward does).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tune/core/config.h"
#include "tune/reward/program.h"
#include "tune/reward/reward.h"
#include "tune/reward/rules.h"

namespace tune::reward {

// A reward model (`tune rm` output) as a term; built by algo::ModelReward.
struct ModelOptions {
  std::string path;                 // the reward model directory (full or LoRA layout)
  std::string made_by;              // the command whose run writes `path` (chained presets)
  std::string base;                 // LoRA layout: its base model (default: adapter_config.json's)
  std::string chat_template;        // "" = the reward model's own template; else a built-in name
  std::string normalize = "auto";   // auto | none | stats | fixed | running
  double mean = 0.0;                // fixed: (score - mean) / std
  double std = 1.0;
  int64_t batch_size = 8;
  int64_t max_seq_len = 4096;       // longer sequences keep their last tokens
  std::string device = "auto";
  std::string dtype = "auto";
  template <class V>
  void visit(V& v) {
    v("path", path, "reward model directory (tune rm output: full or LoRA layout)",
      config::Check<std::string>([](const std::string& p) { return p.empty() ? "must be set" : ""; }));
    v("made_by", made_by, "the command that writes path (another run's output), named when it is missing");
    v("base", base, "LoRA reward model: its base model directory (default: from adapter_config.json)");
    v("chat_template", chat_template, "built-in chat template for the reward model instead of its own");
    v("normalize", normalize, "auto (stats when reward_stats.json has them, else running) | none | stats | fixed | running",
      config::one_of({"auto", "none", "stats", "fixed", "running"}));
    v("mean", mean, "normalize: fixed: the mean subtracted");
    v("std", std, "normalize: fixed: the std divided by", config::greater_than(0.0));
    v("batch_size", batch_size, "sequences per reward-model forward pass", config::greater_than<int64_t>(0));
    v("max_seq_len", max_seq_len, "longer prompt+completion sequences keep their last tokens",
      config::greater_than<int64_t>(0));
    v("device", device, "auto | cpu | cuda | cuda:N");
    v("dtype", dtype, "auto | float32 | bfloat16 | float16", config::one_of({"auto", "float32", "bfloat16", "float16"}));
  }
};

inline const std::vector<std::string>& term_kinds() {
  static const std::vector<std::string> kinds = {"answer_match", "format",     "length", "repetition",
                                                 "overlong",     "truncation", "program", "model"};
  return kinds;
}

struct TermConfig {
  std::string kind;
  std::string name;     // "" = the kind
  double weight = 1.0;  // 0: scored and logged, not in the total
  AnswerMatchOptions answer_match;
  FormatOptions format;
  LengthOptions length;
  RepetitionOptions repetition;
  OverlongOptions overlong;
  TruncationOptions truncation;
  ProgramOptions program;
  ModelOptions model;

  template <class V>
  void visit(V& v) {
    v("kind", kind, "answer_match | format | length | repetition | overlong | truncation | program | model",
      config::one_of(term_kinds()));
    v("name", name, "logged as reward/<name> (default: the kind)");
    v("weight", weight, "weight in the total (0: logged only)");
    // Only the options of this kind are keys: another kind's option is an unknown-key error.
    if (kind == "answer_match") answer_match.visit(v);
    else if (kind == "format") format.visit(v);
    else if (kind == "length") length.visit(v);
    else if (kind == "repetition") repetition.visit(v);
    else if (kind == "overlong") overlong.visit(v);
    else if (kind == "truncation") truncation.visit(v);
    else if (kind == "program") program.visit(v);
    else if (kind == "model") model.visit(v);
  }
  std::string term_name() const { return name.empty() ? kind : name; }
};

struct RewardConfig {
  std::vector<TermConfig> terms;
  std::string command;      // shorthand: one more program term, named "program", weight 1
  double timeout_s = 60.0;  // the shorthand program's timeout_s
  template <class V>
  void visit(V& v) {
    v.list("terms", terms);
    v("command", command, "shorthand for one program term: its shell command");
    v("timeout_s", timeout_s, "the shorthand program's seconds per answer line", config::greater_than(0.0));
  }
  bool empty() const { return terms.empty() && command.empty(); }
};

// Builds the reward model term (algo::ModelReward); `key` is the term's config path for errors.
using ModelFactory = std::function<std::unique_ptr<Reward>(const ModelOptions& options, const std::string& key)>;

// One term of `config`; `key` ("reward.terms[2]") names it in errors.
std::unique_ptr<Reward> build_term(const TermConfig& term, const std::string& key, const ModelFactory& model = {});

// The composite of every term (and the shorthand command). Errors (UsageError) name the key under
// `prefix`: no terms, a duplicate or reserved name, kind model without a factory.
Composite build(const RewardConfig& config, const ModelFactory& model = {}, const std::string& prefix = "reward");

}  // namespace tune::reward

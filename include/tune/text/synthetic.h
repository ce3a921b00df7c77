#pragma once
// Synthetic tasks that ship with tune: small, exactly checkable problems for the learning proofs,
// CI smoke runs and the README. Deterministic for a seed. Torch-free.
//
//   addition     "57+38=" -> "95"           (SFT proof: a tiny model learns it from scratch)
//   reverse      "reverse 4096" -> "6904"   (LoRA proof: a second task on top of addition)
//   addition_pref  prompt "57+38=", chosen "95", rejected a near miss ("85", "96", ...): RM / DPO
//   reverse_pref   prompt "reverse 4096", chosen "6904", rejected a slip ("9604", "6905", ...): RM
//   json_answer  "What is 57 + 38?" -> {"answer": 95}   (real-model proof: a format the prompt never
//                asks for; format "prompt" gives the number as the reference)
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/json.h"

namespace tune::text {

struct SynthOptions {
  std::string task = "addition";
  int64_t count = 1000;
  uint64_t seed = 1;
  int digits = 2;                 // operand size of addition / length of reverse inputs
  std::vector<std::string> exclude_prompts;  // e.g. the training prompts, when making a test set
  std::string format = "default";  // default (per task, below) | prompt (RL prompt records of any task)
};

std::vector<std::string> synthetic_task_names();
std::vector<std::string> synthetic_format_names();  // default, prompt

// One JSON record per sample, in the formats the dataset readers take:
//   SFT tasks:   {"messages": [{"role":"user","content":P},{"role":"assistant","content":A}], "answer": A}
//   preference:  {"prompt": P, "chosen": A, "rejected": B}
//   format "prompt", any task: {"prompt": P, "reference": A}  (RL prompts; A is the right answer)
// Prompts are distinct within one call.
std::vector<Json> make_synthetic(const SynthOptions& options);

// The reference answer of a synthetic prompt ("57+38=" -> "95"), or "" if it is not one.
std::string synthetic_answer(const std::string& prompt);

// Records as `tune data synth` writes them: one compact JSON object per line, each ending in "\n".
std::string synthetic_jsonl(const std::vector<Json>& records);

// The prompts of a JSONL file of chat or preference records (a training set whose prompts a test
// set must not reuse), or of a synthetic source (below). A chat record's prompt is its first message.
std::vector<std::string> prompts_of_source(const std::string& source);

// Synthetic sources: a dataset path that names a synthetic task instead of a file, so shipped
// configs run without generating files first (docs/presets.md). The records are byte-identical to
// `tune data synth` with the same arguments.
//   synth:<task>[?count=N&seed=S&digits=D&as=chat|prompt][&exclude=<source>]
// Defaults are those of `tune data synth` (count 1000, seed 1, digits 2, as chat). `exclude` comes last and
// takes the rest of the string: a JSONL file or another synthetic source, whose prompts are left out
// (`--exclude`). A nested source may exclude in turn, so chains of disjoint sets stay one string:
//   synth:addition?count=300&seed=2&exclude=synth:addition?count=5000&seed=1
constexpr const char* kSynthPrefix = "synth:";
bool is_synthetic_source(std::string_view path);
// Parses a source (exclusions read or generated); a malformed one is a UsageError naming it.
SynthOptions parse_synthetic_source(const std::string& source);
// The JSONL text of a source: what `tune data synth ... --out FILE` would write into FILE.
std::string synthetic_source_jsonl(const std::string& source);

}  // namespace tune::text

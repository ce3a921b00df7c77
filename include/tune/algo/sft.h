#pragma once
// Supervised fine-tuning: maximise log p(assistant tokens | context), full or LoRA.
#include <string>

#include "tune/algo/sections.h"
#include "tune/core/json.h"
#include "tune/lora/config.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

struct EvalSection {
  int64_t every = 0;            // optimizer steps between evaluations (0: only at the end)
  int64_t max_samples = 200;    // held-out samples evaluated
  bool generate = true;         // exact match of greedy answers against references
  int64_t max_new_tokens = 0;   // 0: the longest reference answer + EOS + a margin
  int64_t batch_size = 32;
  bool at_start = false;        // also evaluate before the first step (the starting point of a curve)
  int64_t samples = 4;          // eval completions written to samples.jsonl per evaluation (tune report shows them)
  template <class V>
  void visit(V& v) {
    v("at_start", at_start, "also evaluate before the first step");
    v("every", every, "steps between evaluations (0: only at the end)", config::at_least<int64_t>(0));
    v("max_samples", max_samples, "held-out samples evaluated", config::greater_than<int64_t>(0));
    v("generate", generate, "also measure exact match of greedy answers (the metric that picks the best checkpoint)");
    v("max_new_tokens", max_new_tokens,
      "answer length limit for exact match (0: the longest reference answer's tokens + EOS + a margin)",
      config::at_least<int64_t>(0));
    v("batch_size", batch_size, "prompts generated at once", config::greater_than<int64_t>(0));
    v("samples", samples, "eval completions written to samples.jsonl per evaluation (0: none)", config::at_least<int64_t>(0));
  }
};

struct SftConfig {
  std::string output_dir = "runs/sft";
  int64_t seed = 42;
  std::string resume;            // "" | "auto" | checkpoint directory
  bool overwrite = false;        // replace an earlier run in output_dir
  std::string method = "lora";   // lora | full
  ModelSection model;
  lora::LoraConfig lora;
  text::DataConfig data;
  OptimSection optim;
  LoopSection train;
  EvalSection eval;
  LogSection log;
  template <class V>
  void visit(V& v) {
    visit_run_keys(v, *this);
    v.section("model", model);
    v.section("lora", lora);
    v.section("data", data);
    v.section("optim", optim);
    v.section("train", train);
    v.section("eval", eval);
    v.section("log", log);
  }
};

// Trains and writes <output_dir>/final (HF model or PEFT adapter). dry_run: validates config, data
// and model, prints the plan, trains nothing. `resolved` is the configuration saved in the run dir.
void run_sft(const SftConfig& config, bool dry_run);

}  // namespace tune::algo

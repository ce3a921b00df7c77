#pragma once
// Config sections every training command shares (model, optimizer, loop, evaluation), declared
// once with their defaults, help text and checks. Algorithms compose them into their own config.
#include <cstdint>
#include <string>

#include "tune/core/config.h"
#include "tune/train/optimizer.h"
#include "tune/train/schedule.h"

namespace tune::algo {

struct ModelSection {
  std::string path;                    // Hugging Face model directory, or builtin:tiny (model_source.h)
  std::string dtype = "auto";          // auto: bfloat16 on CUDA, float32 on CPU
  std::string device = "auto";         // auto: cuda when available
  bool gradient_checkpointing = false;
  std::string chat_template;           // "" = the model's own; else a built-in name
  std::string made_by;                 // the command whose run writes `path` (chained presets)
  template <class V>
  void visit(V& v) {
    v("path", path, "Hugging Face model directory (config.json, safetensors, tokenizer), or builtin:tiny");
    v("dtype", dtype, "auto | float32 | bfloat16 | float16", config::one_of({"auto", "float32", "bfloat16", "float16"}));
    v("device", device, "auto | cpu | cuda | cuda:N");
    v("gradient_checkpointing", gradient_checkpointing, "recompute each block in backward (saves memory)");
    v("chat_template", chat_template, "built-in chat template (chatml, llama3, llama2, mistral) instead of the model's");
    v("made_by", made_by, "the command that writes model.path (another run's output), named when it is missing");
  }
};

struct OptimSection {
  double lr = 2e-5;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::string schedule = "cosine";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.03;
  double min_lr_ratio = 0.0;
  template <class V>
  void visit(V& v) {
    v("lr", lr, "peak learning rate", config::greater_than(0.0));
    v("weight_decay", weight_decay, "AdamW decoupled weight decay (not on biases and norms)", config::at_least(0.0));
    v("beta1", beta1, "AdamW beta1", config::in_range(0.0, 0.9999));
    v("beta2", beta2, "AdamW beta2", config::in_range(0.0, 0.99999));
    v("eps", eps, "AdamW epsilon", config::greater_than(0.0));
    v("schedule", schedule, "constant | linear | cosine", config::one_of({"constant", "linear", "cosine"}));
    v("warmup_steps", warmup_steps, "linear warmup steps (wins over warmup_ratio when > 0)", config::at_least<int64_t>(0));
    v("warmup_ratio", warmup_ratio, "warmup as a share of all steps", config::in_range(0.0, 1.0));
    v("min_lr_ratio", min_lr_ratio, "the decay ends at lr x this", config::in_range(0.0, 1.0));
  }
  train::AdamWConfig adamw() const { return {lr, weight_decay, beta1, beta2, eps}; }
  train::ScheduleConfig schedule_config() const {
    return {train::parse_schedule_kind(schedule), warmup_steps, warmup_ratio, min_lr_ratio};
  }
};

struct LoopSection {
  int64_t epochs = 1;
  int64_t max_steps = -1;          // > 0 wins over epochs
  int64_t batch_size = 8;          // rows per micro-batch
  int64_t grad_accum = 1;          // micro-batches per optimizer step
  double max_grad_norm = 1.0;
  int64_t max_consecutive_skips = 5;
  int64_t log_every = 10;
  int64_t save_every = 0;          // 0: only at the end
  int64_t keep_last = 2;
  int64_t threads = 0;             // CPU threads for LibTorch (0: its default)
  int64_t zero_stage = 0;          // data parallelism: 1 = ZeRO-1, optimizer state sharded over ranks
  template <class V>
  void visit(V& v) {
    v("epochs", epochs, "passes over the training data", config::greater_than<int64_t>(0));
    v("max_steps", max_steps, "optimizer steps (> 0 wins over epochs)");
    v("batch_size", batch_size, "rows per micro-batch", config::greater_than<int64_t>(0));
    v("grad_accum", grad_accum, "micro-batches per optimizer step", config::greater_than<int64_t>(0));
    v("max_grad_norm", max_grad_norm, "gradient clipping norm (<= 0: off)");
    v("max_consecutive_skips", max_consecutive_skips, "non-finite steps in a row before the run stops",
      config::greater_than<int64_t>(0));
    v("log_every", log_every, "steps between progress lines / metrics records", config::greater_than<int64_t>(0));
    v("save_every", save_every, "steps between checkpoints (0: only at the end)", config::at_least<int64_t>(0));
    v("keep_last", keep_last, "checkpoints kept besides the best (<= 0: all)");
    v("threads", threads, "CPU threads (0: LibTorch default)", config::at_least<int64_t>(0));
    v("zero_stage", zero_stage, "0 | 1: ZeRO-1 shards the AdamW state over data-parallel ranks (docs/distributed.md)",
      config::in_range<int64_t>(0, 1));
  }
};

// PTX (InstructGPT's pretraining mix): SFT records mixed into every policy step as an NLL term,
// against forgetting what SFT taught while the reward pulls elsewhere.
struct PtxSection {
  std::string path;     // SFT records (a JSONL file or a synth: source, any SFT format); empty: off
  double coef = 0.05;   // weight of the term: loss = policy loss + coef x NLL per token (OpenRLHF 0.05)
  double share = 0.1;   // records per policy step, as a share of the step's rows (at least 1)
  template <class V>
  void visit(V& v) {
    v("path", path, "SFT records mixed into each policy step as an NLL term (empty: off)");
    v("coef", coef, "weight of the NLL term per token (OpenRLHF ptx_coef 0.05)", config::greater_than(0.0));
    v("share", share, "SFT records per policy step, as a share of the step's completions (at least 1 record)",
      config::greater_than(0.0));
  }
};

// What is written beside metrics.jsonl.
struct LogSection {
  bool tensorboard = false;  // TensorBoard event files (the same scalars as metrics.jsonl)
  template <class V>
  void visit(V& v) {
    v("tensorboard", tensorboard, "also write TensorBoard event files (every metrics.jsonl scalar) in the run directory");
  }
};

// The top-level keys every training config has (output_dir, seed, resume, method), visited in one
// place so their help text and checks are the same for every command.
template <class V, class Config>
void visit_run_keys(V& v, Config& c) {
  v("output_dir", c.output_dir, "run directory (config, manifest, metrics, checkpoints, final model)");
  v("seed", c.seed, "random seed (initialisation, dropout, data order)");
  v("resume", c.resume, "\"auto\" (latest checkpoint of output_dir) or a checkpoint directory");
  v("overwrite", c.overwrite, "replace an earlier run in output_dir (a fresh run refuses a non-empty one)");
  v("method", c.method, "lora | full", config::one_of({"lora", "full"}));
}

}  // namespace tune::algo

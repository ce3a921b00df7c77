#pragma once
// GRPO and its relatives (Dr. GRPO, DAPO, RLOO, GSPO, CISPO): RL from rewards on groups of G
// completions per prompt, sampled by the very model being trained (tune/rollout), scored by any
// reward of tune/reward, with the shared policy-loss core (tune/algo/policy_loss.h).
//
// One round: prompts_per_round prompts -> G completions each -> rewards -> group advantages (null
// rewards excluded) -> [dynamic sampling: drop groups without signal, draw more prompts] -> the
// round's rows, trained for `mu` iterations of `mini_batches` optimizer steps each. Old log-probs
// are the trainer's own (with mu = 1 the ratio is exactly 1); the sampler-vs-trainer gap is logged.
#include <cstdint>
#include <string>

#include "tune/algo/sections.h"
#include "tune/lora/config.h"
#include "tune/reward/config.h"
#include "tune/rollout/config.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

struct GrpoSection {
  int64_t group_size = 8;          // G completions per prompt
  int64_t prompts_per_round = 8;   // prompts rolled out per round (the generation batch)
  int64_t mini_batches = 1;        // optimizer steps per pass over a round (TRL steps_per_generation)
  int64_t mu = 1;                  // passes over each round (TRL num_iterations)
  std::string baseline = "mean";   // mean | rloo
  std::string scale = "group";     // group | batch | none (Dr. GRPO)
  double std_eps = 1e-4;
  std::string loss = "token_mean";  // token_mean (DAPO) | seq_mean_token_mean (GRPO) | seq_mean_token_sum_norm (Dr. GRPO)
  std::string objective = "clip";   // clip | cispo
  std::string ratio = "token";      // token | sequence (GSPO)
  double clip_low = 0.2;
  double clip_high = 0.2;          // DAPO's clip-higher: 0.28
  double dual_clip = 0.0;          // 0 = off; verl/OpenRLHF use 3
  double log_ratio_clamp = 20.0;
  double beta = 0.0;               // KL-to-reference weight; 0 = no reference forward at all
  std::string kl = "k3";           // k1 | k2 | k3
  double entropy_coef = 0.0;
  bool dynamic_sampling = false;   // DAPO: drop groups whose rewards are all equal, draw more prompts
  int64_t max_sampling_rounds = 3; // extra rollouts per round at most when dynamic sampling
  bool mask_truncated = false;     // completions cut by max_new_tokens take no part in the loss
  int64_t ref_sync_every = 0;      // full fine-tuning: mix the policy into the reference every N steps
  double ref_sync_alpha = 1.0;     // reference <- alpha * policy + (1 - alpha) * reference
  bool symptoms = true;
  int64_t log_samples = 4;         // completions written to samples.jsonl per round
  template <class V>
  void visit(V& v) {
    v("group_size", group_size, "completions per prompt (G)", config::greater_than<int64_t>(1));
    v("prompts_per_round", prompts_per_round, "prompts rolled out per round", config::greater_than<int64_t>(0));
    v("mini_batches", mini_batches, "optimizer steps per pass over a round's completions", config::greater_than<int64_t>(0));
    v("mu", mu, "passes over each round's completions (old log-probs kept)", config::greater_than<int64_t>(0));
    v("baseline", baseline, "mean (GRPO) | rloo (leave-one-out)", config::one_of({"mean", "rloo"}));
    v("scale", scale, "group (GRPO) | batch | none (Dr. GRPO): what advantages are divided by",
      config::one_of({"group", "batch", "none"}));
    v("std_eps", std_eps, "added to the std before dividing (TRL 1e-4)", config::greater_than(0.0));
    v("loss", loss, "token_mean (DAPO) | seq_mean_token_mean (GRPO) | seq_mean_token_sum_norm (Dr. GRPO)",
      config::one_of({"token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm", "dapo", "bnpo", "grpo", "dr_grpo"}));
    v("objective", objective, "clip (PPO-style) | cispo", config::one_of({"clip", "cispo"}));
    v("ratio", ratio, "token | sequence (GSPO)", config::one_of({"token", "sequence"}));
    v("clip_low", clip_low, "ratio floor 1 - clip_low", config::in_range(0.0, 1.0));
    v("clip_high", clip_high, "ratio ceiling 1 + clip_high (DAPO clip-higher 0.28)", config::at_least(0.0));
    v("dual_clip", dual_clip, "cap the loss of negative-advantage tokens at -c A (0 = off, else > 1)",
      config::Check<double>([](double c) { return c == 0 || c > 1 ? "" : "must be 0 (off) or > 1"; }));
    v("log_ratio_clamp", log_ratio_clamp, "|log ratio| clamped before exp (<= 0: off)");
    v("beta", beta, "KL-to-reference weight in the loss (0: no reference)", config::at_least(0.0));
    v("kl", kl, "KL estimator: k1 | k2 | k3", config::one_of({"k1", "k2", "k3"}));
    v("entropy_coef", entropy_coef, "entropy bonus weight (0 = off)", config::at_least(0.0));
    v("dynamic_sampling", dynamic_sampling, "drop groups without reward variance and sample more prompts (DAPO)");
    v("max_sampling_rounds", max_sampling_rounds, "extra rollouts per round at most for dynamic sampling",
      config::at_least<int64_t>(0));
    v("mask_truncated", mask_truncated, "completions cut by the length limit take no part in the loss");
    v("ref_sync_every", ref_sync_every, "full fine-tuning: refresh the reference every N steps (0 = never)",
      config::at_least<int64_t>(0));
    v("ref_sync_alpha", ref_sync_alpha, "refresh mix: reference <- alpha policy + (1 - alpha) reference",
      config::in_range(0.0, 1.0));
    v("symptoms", symptoms, "watch the metrics for known RL pathologies and print the remedy");
    v("log_samples", log_samples, "completions per round written to samples.jsonl", config::at_least<int64_t>(0));
  }
};

struct GrpoEvalSection {
  int64_t every = 0;          // steps between evaluations (0: only at the start and the end)
  bool at_start = true;
  int64_t max_prompts = 200;
  int64_t batch_size = 64;    // prompts per rollout call
  bool greedy = true;         // pass@1 of greedy answers
  bool sampled = true;        // pass@1 of one sample at the rollout temperature
  std::string pass_term;      // the reward term that decides a pass ("" = the first)
  double pass_threshold = 1.0;  // a pass: that term's value >= this
  template <class V>
  void visit(V& v) {
    v("every", every, "steps between evaluations (0: only at the start and the end)", config::at_least<int64_t>(0));
    v("at_start", at_start, "evaluate before the first step");
    v("max_prompts", max_prompts, "held-out prompts evaluated", config::greater_than<int64_t>(0));
    v("batch_size", batch_size, "prompts per rollout call", config::greater_than<int64_t>(0));
    v("greedy", greedy, "greedy pass@1");
    v("sampled", sampled, "sampled pass@1 (rollout temperature)");
    v("pass_term", pass_term, "reward term that decides a pass (default: the first)");
    v("pass_threshold", pass_threshold, "a pass: the term's value >= this");
  }
};

struct GrpoConfig {
  std::string output_dir = "runs/grpo";
  int64_t seed = 42;
  std::string resume;
  bool overwrite = false;
  std::string method = "lora";
  ModelSection model;
  lora::LoraConfig lora;
  text::DataConfig data;        // RL prompt records (or chat / prompt-completion: the answer is the reference)
  reward::RewardConfig reward;
  rollout::SamplingConfig rollout;
  rollout::EngineConfig engine;
  GrpoSection grpo;
  PtxSection ptx;
  OptimSection optim;
  LoopSection train;
  GrpoEvalSection eval;
  LogSection log;
  GrpoConfig() {
    optim.lr = 1e-6;  // practitioners: ~1e-6 full, ~1e-5 LoRA
    optim.warmup_ratio = 0.0;
    optim.schedule = "constant";
    train.max_steps = 100;
    train.log_every = 1;
    rollout.max_new_tokens = 256;
  }
  template <class V>
  void visit(V& v) {
    visit_run_keys(v, *this);
    v.section("model", model);
    v.section("lora", lora);
    v.section("data", data);
    v.section("reward", reward);
    v.section("rollout", rollout);
    v.section("engine", engine);
    v.section("grpo", grpo);
    v.section("ptx", ptx);
    v.section("optim", optim);
    v.section("train", train);
    v.section("eval", eval);
    v.section("log", log);
  }
};

// Trains and writes <output_dir>/final (HF model or PEFT adapter); metrics.jsonl per step,
// samples.jsonl (completions with their rewards), checkpoints at round boundaries.
void run_grpo(const GrpoConfig& config, bool dry_run);

}  // namespace tune::algo

#pragma once
// PPO for RLHF (InstructGPT; TRL's PPO; OpenRLHF): the policy samples completions (tune/rollout),
// a reward (usually a `tune rm` reward model, any reward of tune/reward combined) scores them, the
// per-token reward is minus the k1 KL to the reference at every token plus the score at the last
// completion token, a critic (a value head over a model) gives values, GAE gives advantages and
// returns, and `ppo_epochs` passes of mini-batch steps train the clipped policy loss and the
// clipped value loss with the rollout's old log-probs and old values kept.
//
// Roles (each its own model; the shared-base multi-adapter layout is not built yet):
//   policy     full or LoRA (model.path, method, lora)
//   reference  LoRA: the policy with its adapters disabled; full: a frozen copy of model.path
//   critic     a value head [1, H] over a decoder; initialised from the reward model (InstructGPT;
//              critic.init: reward_model, the default) or from the policy's weights (critic.init:
//              policy); full or LoRA; its own optimizer, learning rate and warm-up
//   rewards    reward.terms (kind: model for a `tune rm` output, rules, programs), normalised there
// Critic-free estimators (ppo.estimator reinforce_pp | reinforce_baseline | rloo) run no critic.
#include <cstdint>
#include <string>

#include "tune/algo/grpo.h"
#include "tune/algo/kl_controller.h"
#include "tune/algo/sections.h"
#include "tune/lora/config.h"
#include "tune/reward/config.h"
#include "tune/rollout/config.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

struct PpoSection {
  int64_t prompts_per_round = 64;  // prompts rolled out per round (the rollout batch)
  int64_t group_size = 1;          // completions per prompt (>= 2 for reinforce_baseline / rloo)
  int64_t ppo_epochs = 4;          // passes over each round's rows (old log-probs and values kept)
  int64_t mini_batch_size = 16;    // rows per optimizer step; divides prompts_per_round x group_size
  std::string estimator = "gae";   // gae (critic) | reinforce_pp | reinforce_baseline | rloo
  std::string shared_base = "auto";  // auto | on | off: one base copy for LoRA policy, critic and reward models
  double gamma = 1.0;
  double lam = 0.95;               // GAE lambda (TRL 0.95)
  bool whiten_advantages = true;   // masked whitening over the whole round (TRL, OpenRLHF)
  double whiten_eps = 1e-8;
  double clip_low = 0.2;
  double clip_high = 0.2;
  double dual_clip = 0.0;          // 0 = off; verl / OpenRLHF 3
  double log_ratio_clamp = 20.0;
  double value_clip = 0.2;         // TRL cliprange_value 0.2 (verl, OpenRLHF 0.5); <= 0: off
  double vf_coef = 0.1;            // TRL 0.1: with the critic's own optimizer a learning-rate factor
  double entropy_coef = 0.0;
  double missing_eos_penalty = 0.0;  // subtracted from the score of a completion without EOS (TRL)
  double score_clip = 0.0;           // |score| clipped before use; 0 = off (OpenRLHF 10)
  bool mask_truncated = false;       // completions cut by max_new_tokens take no part in the loss
  bool reward_scaling = false;       // per-token rewards / running std of the sequences' returns
  bool symptoms = true;
  int64_t log_samples = 4;           // completions per round written to samples.jsonl
  template <class V>
  void visit(V& v) {
    v("prompts_per_round", prompts_per_round, "prompts rolled out per round", config::greater_than<int64_t>(0));
    v("group_size", group_size, "completions per prompt (>= 2 for reinforce_baseline and rloo)",
      config::greater_than<int64_t>(0));
    v("ppo_epochs", ppo_epochs, "passes over each round's completions (TRL num_ppo_epochs 4)",
      config::greater_than<int64_t>(0));
    v("mini_batch_size", mini_batch_size, "completions per optimizer step (must divide the round)",
      config::greater_than<int64_t>(0));
    v("estimator", estimator, "gae (a critic) | reinforce_pp | reinforce_baseline | rloo (critic-free)",
      config::one_of({"gae", "reinforce_pp", "reinforce_baseline", "rloo"}));
    v("shared_base", shared_base,
      "auto | on | off: hold one copy of the base when the policy, the critic and every reward model are LoRA "
      "adapters over the same base (auto: whenever they are)",
      config::one_of({"auto", "on", "off"}));
    v("gamma", gamma, "discount", config::in_range(0.0, 1.0));
    v("lam", lam, "GAE lambda (TRL 0.95; verl 1.0)", config::in_range(0.0, 1.0));
    v("whiten_advantages", whiten_advantages, "whiten advantages over the round's tokens (masked mean / var)");
    v("whiten_eps", whiten_eps, "added to the variance before whitening", config::greater_than(0.0));
    v("clip_low", clip_low, "ratio floor 1 - clip_low", config::in_range(0.0, 1.0));
    v("clip_high", clip_high, "ratio ceiling 1 + clip_high (clip-higher 0.28)", config::at_least(0.0));
    v("dual_clip", dual_clip, "cap the loss of negative-advantage tokens at -c A (0 = off, else > 1)",
      config::Check<double>([](double c) { return c == 0 || c > 1 ? "" : "must be 0 (off) or > 1"; }));
    v("log_ratio_clamp", log_ratio_clamp, "|log ratio| clamped before exp (<= 0: off)");
    v("value_clip", value_clip, "value clip range around the old values (<= 0: off)");
    v("vf_coef", vf_coef, "value loss weight (TRL 0.1)", config::greater_than(0.0));
    v("entropy_coef", entropy_coef, "entropy bonus weight (0 = off)", config::at_least(0.0));
    v("missing_eos_penalty", missing_eos_penalty, "subtracted from the score of a completion without EOS (0 = off)",
      config::at_least(0.0));
    v("score_clip", score_clip, "scores clipped to [-c, c] before use (0 = off; OpenRLHF 10)", config::at_least(0.0));
    v("mask_truncated", mask_truncated, "completions cut by the length limit take no part in the loss");
    v("reward_scaling", reward_scaling,
      "divide the per-token rewards by the running std of the completions' returns (Engstrom et al. 2020)");
    v("symptoms", symptoms, "watch the metrics for known RL pathologies and print the remedy");
    v("log_samples", log_samples, "completions per round written to samples.jsonl", config::at_least<int64_t>(0));
  }
};

struct CriticSection {
  std::string init = "reward_model";  // reward_model (InstructGPT) | policy
  std::string path;                   // reward_model: the RM directory ("" = the first kind: model term's)
  std::string method = "full";        // full | lora (a LoRA-layout reward model keeps its own adapters)
  lora::LoraConfig lora;              // method lora on a full-layout start
  double lr = 1e-5;                   // its own learning rate (verl 1e-5, OpenRLHF 9e-6)
  double max_grad_norm = 1.0;
  double weight_decay = 0.0;
  int64_t warmup_steps = 0;           // first optimizer steps that train the critic only (policy frozen)
  template <class V>
  void visit(V& v) {
    v("init", init, "reward_model (start from the reward model, InstructGPT) | policy (from model.path)",
      config::one_of({"reward_model", "policy"}));
    v("path", path, "init reward_model: the tune rm output (default: the first kind: model reward term's path)");
    v("method", method, "full | lora", config::one_of({"full", "lora"}));
    v.section("lora", lora);
    v("lr", lr, "critic learning rate (constant after the optimizer's warm-up)", config::greater_than(0.0));
    v("max_grad_norm", max_grad_norm, "critic gradient clipping norm (<= 0: off)");
    v("weight_decay", weight_decay, "critic AdamW weight decay", config::at_least(0.0));
    v("warmup_steps", warmup_steps, "optimizer steps that train only the critic, the policy frozen",
      config::at_least<int64_t>(0));
  }
};

struct PpoConfig {
  std::string output_dir = "runs/ppo";
  int64_t seed = 42;
  std::string resume;
  bool overwrite = false;
  std::string method = "lora";
  ModelSection model;
  lora::LoraConfig lora;
  text::DataConfig data;        // RL prompt records (a reference answer is optional: reward models need none)
  reward::RewardConfig reward;
  rollout::SamplingConfig rollout;
  rollout::EngineConfig engine;
  PpoSection ppo;
  KlControlConfig kl;
  CriticSection critic;
  PtxSection ptx;
  OptimSection optim;
  LoopSection train;
  GrpoEvalSection eval;         // held-out pass@1 (greedy and sampled), as grpo's
  LogSection log;
  PpoConfig() {
    optim.lr = 3e-6;  // practitioners: about a tenth of SFT's (1e-6..3e-6 full); ~1e-5 LoRA
    optim.warmup_ratio = 0.0;
    optim.schedule = "constant";
    train.max_steps = 100;
    train.log_every = 1;
    train.max_grad_norm = 0.5;
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
    v.section("ppo", ppo);
    v.section("kl", kl);
    v.section("critic", critic);
    v.section("ptx", ptx);
    v.section("optim", optim);
    v.section("train", train);
    v.section("eval", eval);
    v.section("log", log);
  }
};

// Trains and writes <output_dir>/final (HF model or PEFT adapter) and, with a critic,
// <output_dir>/critic (the value model in the reward-model layout, docs/rm.md); metrics.jsonl per
// step, samples.jsonl, checkpoints at round boundaries (policy, critic, both optimizers, the KL
// controller, the prompt order, the rollout RNG and the rewards' state).
void run_ppo(const PpoConfig& config, bool dry_run);

}  // namespace tune::algo

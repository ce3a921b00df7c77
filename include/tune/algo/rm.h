#pragma once
// Reward-model training: a scalar head on the last non-padding token, pairwise Bradley-Terry loss
//   -log sigmoid(r_chosen - r_rejected - margin) + c * (r_chosen + r_rejected)^2
// (margin from the data when use_margin and present; c = center_rewards_coefficient keeps rewards
// centred on 0, as TRL's option of that name). Full or LoRA (the head is always fully trained).
#include <string>

#include "tune/algo/rm_dpo_data.h"
#include "tune/algo/sections.h"
#include "tune/lora/config.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

struct RmSection {
  bool use_margin = true;
  double center_rewards_coefficient = 0.0;
  int64_t calibration_pairs = 1000;
  template <class V>
  void visit(V& v) {
    v("use_margin", use_margin, "subtract the pair's margin field (when present) inside the sigmoid");
    v("center_rewards_coefficient", center_rewards_coefficient,
      "weight of (r_chosen + r_rejected)^2, pulling rewards towards mean 0 (TRL suggests 0.01)", config::at_least(0.0));
    v("calibration_pairs", calibration_pairs, "pairs scored for reward_stats.json (eval set, else train set)",
      config::greater_than<int64_t>(0));
  }
};

struct RmConfig {
  std::string output_dir = "runs/rm";
  int64_t seed = 42;
  std::string resume;
  bool overwrite = false;        // replace an earlier run in output_dir
  std::string method = "lora";
  ModelSection model;
  lora::LoraConfig lora;
  text::DataConfig data;
  RmSection rm;
  OptimSection optim;
  LoopSection train;
  PreferenceEvalSection eval;
  LogSection log;
  RmConfig() {
    optim.lr = 1e-4;  // LoRA; full fine-tuning: ~1e-5
    data.max_seq_len = 1024;
  }
  template <class V>
  void visit(V& v) {
    visit_run_keys(v, *this);
    v.section("model", model);
    v.section("lora", lora);
    v.section("data", data);
    v.section("rm", rm);
    v.section("optim", optim);
    v.section("train", train);
    v.section("eval", eval);
    v.section("log", log);
  }
};

// Bradley-Terry per pair: [B] rewards (+ [B] margins, 0 where absent) -> [B] losses.
torch::Tensor bradley_terry_loss(const torch::Tensor& chosen, const torch::Tensor& rejected, const torch::Tensor& margin,
                                 double center_coefficient);

// Trains and writes <output_dir>/final (see reward_head.h for the layouts).
void run_rm(const RmConfig& config, bool dry_run);

}  // namespace tune::algo

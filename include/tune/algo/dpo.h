#pragma once
// Direct preference optimisation and its relatives (IPO, hinge, cDPO / robust, SimPO), full or
// LoRA. The reference network is the adapters-off model under LoRA, a frozen copy under full
// fine-tuning, or log-probs precomputed once before training (reference: precompute).
#include <string>

#include "tune/algo/preference_losses.h"
#include "tune/algo/rm_dpo_data.h"
#include "tune/algo/sections.h"
#include "tune/lora/config.h"
#include "tune/text/dataset_config.h"

namespace tune::algo {

struct DpoSection {
  std::string loss = "sigmoid";
  double beta = 0.1;
  double label_smoothing = 0.0;
  double simpo_gamma = 0.5;
  double nll_alpha = 0.0;
  std::string reference = "auto";
  bool symptoms = true;
  template <class V>
  void visit(V& v) {
    v("loss", loss, "sigmoid (DPO) | robust | hinge | ipo | simpo (reference-free)",
      config::one_of({"sigmoid", "robust", "hinge", "ipo", "simpo"}));
    v("beta", beta, "strength of the implicit KL to the reference (like PPO's KL coefficient)",
      config::greater_than(0.0));
    v("label_smoothing", label_smoothing, "share of pairs assumed flipped (cDPO with sigmoid, robust, simpo)",
      config::in_range(0.0, 0.5));
    v("simpo_gamma", simpo_gamma, "SimPO target reward margin", config::at_least(0.0));
    v("nll_alpha", nll_alpha, "weight of an NLL term on the chosen answer (per token; RPO)", config::at_least(0.0));
    v("reference", reference,
      "auto (adapters off under LoRA, a frozen copy under full) | precompute (reference log-probs once, before training)",
      config::one_of({"auto", "precompute"}));
    v("symptoms", symptoms, "watch the metrics for known pathologies and print the remedy");
  }
  PreferenceLossConfig loss_config() const {
    return {parse_preference_loss(loss), beta, label_smoothing, simpo_gamma, nll_alpha};
  }
};

// The preference evaluation, plus a few greedy completions of eval prompts per evaluation
// (samples.jsonl, shown by tune report: the loss alone does not say whether the answers got better).
struct DpoEvalSection : PreferenceEvalSection {
  int64_t samples = 4;
  template <class V>
  void visit(V& v) {
    PreferenceEvalSection::visit(v);
    v("samples", samples, "greedy completions of eval prompts written to samples.jsonl per evaluation (0: none)",
      config::at_least<int64_t>(0));
  }
};

struct DpoConfig {
  std::string output_dir = "runs/dpo";
  int64_t seed = 42;
  std::string resume;
  bool overwrite = false;        // replace an earlier run in output_dir
  std::string method = "lora";
  ModelSection model;
  lora::LoraConfig lora;
  text::DataConfig data;
  DpoSection dpo;
  OptimSection optim;
  LoopSection train;
  DpoEvalSection eval;
  LogSection log;
  DpoConfig() {
    optim.lr = 5e-6;  // DPO moves far less than SFT: 5e-7..5e-6 full, ~5e-6..5e-5 LoRA
    optim.warmup_ratio = 0.1;
    data.max_seq_len = 1024;
  }
  template <class V>
  void visit(V& v) {
    visit_run_keys(v, *this);
    v.section("model", model);
    v.section("lora", lora);
    v.section("data", data);
    v.section("dpo", dpo);
    v.section("optim", optim);
    v.section("train", train);
    v.section("eval", eval);
    v.section("log", log);
  }
};

// Trains and writes <output_dir>/final (HF model or PEFT adapter).
void run_dpo(const DpoConfig& config, bool dry_run);

}  // namespace tune::algo

// Config smells: settings practitioners would question before a run starts. Each threshold says
// where it comes from (../shared/reference/practitioner-advice.md and rl-algorithms.md, as digested
// for this project, or "ours" where we chose the number).
#include <algorithm>
#include <cmath>

#include "tune/core/config.h"
#include "tune/core/error.h"
#include "tune/core/str.h"
#include "tune/report/doctor.h"
#include "tune/text/dataset.h"
#include "tune/text/tokenizer.h"

namespace tune::report {

namespace stdfs = std::filesystem;

namespace {

const Json* at(const Json& j, std::initializer_list<const char*> path) {
  const Json* p = &j;
  for (const char* k : path) {
    if (!p->is_object() || !p->contains(k)) return nullptr;
    p = &(*p)[k];
  }
  return p;
}

std::optional<double> number(const Json& j, std::initializer_list<const char*> path) {
  const Json* p = at(j, path);
  if (!p || !p->is_number()) return std::nullopt;
  return p->get<double>();
}

std::string text(const Json& j, std::initializer_list<const char*> path) {
  const Json* p = at(j, path);
  return p && p->is_string() ? p->get<std::string>() : "";
}

stdfs::path resolve(const stdfs::path& base, const std::string& p) {
  stdfs::path path(p);
  return path.is_absolute() ? path : base / path;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

bool is_rl(const std::string& trainer) { return trainer == "grpo" || trainer == "ppo"; }

// The model directory of a config: model.path, else the model config recorded in the manifest.
std::optional<stdfs::path> model_dir(const Json& config, const stdfs::path& base, const Json& manifest) {
  const std::string p = text(config, {"model", "path"});
  if (!p.empty() && stdfs::is_directory(resolve(base, p))) return resolve(base, p);
  if (manifest.contains("files") && manifest["files"].is_array())
    for (const auto& f : manifest["files"])
      if (f.value("role", "") == "model_config" && f.contains("path") && f["path"].is_string()) {
        stdfs::path dir = stdfs::path(f["path"].get<std::string>()).parent_path();
        if (stdfs::is_directory(dir)) return dir;
      }
  return std::nullopt;
}

// The eval references the evaluator generates against (sft: chat answers / prompt references;
// RL: prompt references), as exact_match_items and the RL prompt loader take them.
std::vector<std::string> eval_references(const Json& config, const stdfs::path& base, int64_t limit) {
  Json data = config.contains("data") ? config["data"] : Json::object();
  if (data.contains("datasets") && data["datasets"].is_array())
    for (auto& d : data["datasets"])
      if (d.contains("path") && d["path"].is_string()) d["path"] = resolve(base, d["path"].get<std::string>()).string();
  if (data.contains("eval_path") && data["eval_path"].is_string() && !data["eval_path"].get<std::string>().empty())
    data["eval_path"] = resolve(base, data["eval_path"].get<std::string>()).string();
  config::Sources sources;
  sources.fallback = "config";
  const auto cfg = config::bind<text::DataConfig>(data, sources);
  const text::DataSplit split = text::load_data(cfg);
  std::vector<std::string> refs;
  for (const auto& s : split.eval) {
    if (static_cast<int64_t>(refs.size()) >= limit) break;
    if (s.reference) refs.push_back(*s.reference);
    else if (s.kind == text::SampleKind::chat && s.messages.size() >= 2 && s.messages.back().role == "assistant")
      refs.push_back(s.messages.back().content);
  }
  return refs;
}

Diagnosis smell(std::string id, std::string severity, std::string evidence, std::string cause, std::string remedy,
                std::string source) {
  return {"config", std::move(id), std::move(severity), std::nullopt, std::move(evidence), std::move(cause),
          std::move(remedy), std::move(source), "config"};
}

}  // namespace

ConfigContext config_context(const Json& config, const std::string& trainer, const stdfs::path& base, const Json& manifest) {
  ConfigContext ctx;
  const auto dir = model_dir(config, base, manifest);
  if (!dir) {
    ctx.notes.push_back(str("model.path ", text(config, {"model", "path"}), " not found: the lr of the run that made it and "
                            "the reference lengths were not checked"));
    return ctx;
  }
  // The run that made the model: <run>/final or <run>/checkpoint-N (or the run directory itself).
  std::vector<stdfs::path> candidates;
  const std::string leaf = dir->lexically_normal().filename().string();
  if (leaf == "final" || leaf.rfind("checkpoint-", 0) == 0) candidates.push_back(dir->lexically_normal().parent_path());
  candidates.push_back(*dir);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (!stdfs::is_regular_file(c / "config.json", ec) || !stdfs::is_regular_file(c / "manifest.json", ec)) continue;
    try {
      Json run_config = read_json_file(c / "config.json");
      if (trainer_of(run_config).empty()) continue;
      ctx.source_run_config = std::move(run_config);
      ctx.source_run_dir = c.string();
      break;
    } catch (const std::exception& e) {
      ctx.notes.push_back(str("the run that made the model (", c.string(), ") could not be read: ", e.what()));
    }
  }
  const Json* generate = at(config, {"eval", "generate"});
  const bool generates =
      trainer == "sft" ? !generate || !generate->is_boolean() || generate->get<bool>() : is_rl(trainer);
  if (!generates) return ctx;
  try {
    const auto limit = static_cast<int64_t>(
        number(config, {"eval", trainer == "sft" ? "max_samples" : "max_prompts"}).value_or(200));
    const auto refs = eval_references(config, base, limit);
    if (refs.empty()) return ctx;
    const auto tokenizer = text::Tokenizer::load(*dir);
    int64_t longest = 0;
    for (const auto& r : refs) longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer->encode(trim(r)).size()));
    ctx.longest_reference = longest;
  } catch (const std::exception& e) {
    ctx.notes.push_back(str("the eval reference lengths were not measured: ", e.what()));
  }
  return ctx;
}

std::vector<Diagnosis> diagnose_config(const Json& config, const std::string& trainer, const ConfigContext& ctx) {
  std::vector<Diagnosis> out;
  const auto lr = number(config, {"optim", "lr"});

  // 1. The learning rate against the SFT run that made the model. Practitioners: PPO lr 10-20x
  //    below SFT (1e-6 to 3e-6 after an SFT at 2e-5); DPO 1e-7..5e-6 (SFT ~1e-5..2e-5).
  if (ctx.source_run_config && trainer_of(*ctx.source_run_config) == "sft" && lr &&
      (is_rl(trainer) || trainer == "dpo")) {
    if (const auto sft_lr = number(*ctx.source_run_config, {"optim", "lr"})) {
      const std::string evidence =
          str("optim.lr ", sci(*lr), " against the lr ", sci(*sft_lr), " of the SFT run that made the model (",
              ctx.source_run_dir, ")");
      const std::string source = "practitioner-advice.md (PPO: lr 10-20x below SFT; DPO lr 1e-7..5e-6)";
      if (*lr >= *sft_lr)
        out.push_back(smell(is_rl(trainer) ? "rl_lr" : "dpo_lr", "warning", evidence + ": not below it",
                            "training on the model's own samples (RL) or on preferences moves the policy far at the SFT "
                            "step size: it drifts from the reference and collapses",
                            str("set optim.lr about a tenth of the SFT lr (", sci(*sft_lr / 10), ") or lower"), source));
      else if (is_rl(trainer) && *lr > *sft_lr / 10)
        out.push_back(smell("rl_lr", "note", evidence + ": less than 10x below it", "RL usually runs 10-20x below the SFT lr",
                            str("consider optim.lr ", sci(*sft_lr / 10), " or lower"), source));
    }
  }

  // 2. DPO beta. TRL's default is 0.1 and the DPO paper uses 0.1-0.5; SimPO's paper 2.0-2.5 (our
  //    preset 2.5). The ranges below (wider than those) are ours.
  if (trainer == "dpo") {
    const std::string loss = text(config, {"dpo", "loss"});
    if (const auto beta = number(config, {"dpo", "beta"})) {
      double lo = 0.01, hi = 0.5;
      if (loss == "ipo") hi = 1.0;
      if (loss == "simpo") lo = 1.0, hi = 10.0;
      if (*beta < lo || *beta > hi)
        out.push_back(smell("dpo_beta", "warning",
                            str("dpo.beta ", *beta, " (loss ", loss.empty() ? "sigmoid" : loss, ") is outside the usual ",
                                lo, "..", hi),
                            *beta < lo ? "a tiny beta barely holds the policy near the reference: the loss falls fast while "
                                         "generations get worse (likelihood displacement)"
                                       : "a large beta keeps the policy at the reference: the margin grows slowly",
                            *beta < lo ? str("raise dpo.beta towards ", loss == "simpo" ? "2.0-2.5" : "0.1")
                                       : str("lower dpo.beta towards ", loss == "simpo" ? "2.0-2.5" : "0.1"),
                            "TRL default 0.1, DPO paper 0.1-0.5, SimPO paper 2.0-2.5; practitioner-advice.md (DPO: "
                            "beta is the KL coefficient); ranges ours"));
    }
  }

  // 3. LoRA rank and alpha. Practitioners: the popular presets are r 8-64 with alpha = 2r; one large
  //    lab runs r 64, alpha 16 (alpha / r = 0.25). We flag r outside 4..128 and alpha / r outside 0.25..4.
  if (text(config, {"method"}) == "lora") {
    const auto r = number(config, {"lora", "r"});
    const auto alpha = number(config, {"lora", "alpha"});
    const Json* rs = at(config, {"lora", "use_rslora"});
    const bool rslora = rs && rs->is_boolean() && rs->get<bool>();
    const std::string source = "practitioner-advice.md (LoRA: r 8-64, alpha = 2r; one lab r 64 alpha 16); bounds ours";
    if (r && (*r < 4 || *r > 128))
      out.push_back(smell("lora_rank", "note", str("lora.r ", *r, " is outside the usual 4..128 (popular: 8-64)"),
                          *r < 4 ? "a very small rank may not hold the task" : "a large rank costs memory for little gain",
                          "lora.r 8-64 is where most presets sit", source));
    if (r && alpha && *r > 0 && !rslora) {
      const double ratio = *alpha / *r;
      if (ratio < 0.25 || ratio > 4)
        out.push_back(smell("lora_alpha", "note",
                            str("lora.alpha / lora.r = ", *alpha, " / ", *r, " = ", fixed(ratio, 3),
                                " is outside 0.25..4 (popular: 2)"),
                            "the adapter's scale alpha / r sets its effective learning rate: far off, the lr found for "
                            "the usual scale no longer fits",
                            str("lora.alpha = 2 x lora.r (", 2 * *r, "), or retune optim.lr"), source));
    }
  }

  // 4. No held-out set. Practitioners: loss alone misleads; evaluate checkpoints on the task metric
  //    at regular steps and keep the best.
  const auto eval_fraction = number(config, {"data", "eval_fraction"}).value_or(0.0);
  const std::string eval_path = text(config, {"data", "eval_path"});
  if (eval_fraction <= 0 && eval_path.empty())
    out.push_back(smell("no_eval", "warning", "no eval set: data.eval_fraction is 0 and data.eval_path is empty",
                        "without held-out data nothing measures quality: loss alone misleads, and no best checkpoint is "
                        "chosen",
                        "set data.eval_fraction (e.g. 0.05) or data.eval_path, and eval.every",
                        "practitioner-advice.md (SFT: evaluate checkpoints on the task metric, keep the best)"));
  else if (number(config, {"eval", "every"}).value_or(0) <= 0 && number(config, {"train", "max_steps"}).value_or(0) >= 500)
    out.push_back(smell("eval_rare", "note",
                        str("eval.every is 0: ", number(config, {"train", "max_steps"}).value_or(0),
                            " steps are evaluated only at the end"),
                        "the best checkpoint can only be the last one",
                        "set eval.every (e.g. a tenth of the steps) so the best checkpoint is kept",
                        "practitioner-advice.md (evaluate at regular steps); 500 steps ours"));

  // 5. The generation limit against the reference answers (an answer cut by the limit never matches:
  //    TRL #5697 / #6263 report 97-99% truncated; sft derives the limit as longest + EOS + a margin).
  if (ctx.longest_reference) {
    const int64_t need = *ctx.longest_reference + 1;  // + EOS
    const char* key = trainer == "sft" ? "max_new_tokens" : nullptr;
    const auto limit = trainer == "sft" ? number(config, {"eval", "max_new_tokens"}) : number(config, {"rollout", "max_new_tokens"});
    if (limit && *limit > 0 && *limit < static_cast<double>(need))
      out.push_back(smell("eval_limit", "warning",
                          str(key ? "eval.max_new_tokens " : "rollout.max_new_tokens ", *limit,
                              " is below the longest eval reference answer (", *ctx.longest_reference, " tokens + EOS)"),
                          "answers longer than the limit are cut and count as wrong (or earn no reward)",
                          key ? "set eval.max_new_tokens to 0 (derived from the references) or above the longest answer"
                              : "raise rollout.max_new_tokens above the longest reference answer",
                          "rl-algorithms.md (truncation: TRL #5697 / #6263); evaluate.h (limit = longest + EOS + margin)"));
  }

  // 6. RL batch size. TRL's GRPO default G is 8 (DAPO 16, DeepSeekMath 64); practitioners: bigger
  //    batches are more stable, PPO mini-batch 16.
  if (trainer == "grpo") {
    const auto g = number(config, {"grpo", "group_size"}).value_or(8);
    const auto p = number(config, {"grpo", "prompts_per_round"}).value_or(8);
    const auto mb = std::max(1.0, number(config, {"grpo", "mini_batches"}).value_or(1));
    if (g < 4)
      out.push_back(smell("rl_group", "warning", str("grpo.group_size ", g, " (TRL default 8)"),
                          "group advantages from so few completions are mostly noise, and most groups have no variance",
                          "grpo.group_size 8 or more", "rl-algorithms.md (TRL G 8, DAPO 16, DeepSeekMath 64); bound 4 ours"));
    if (g * p / mb < 16)
      out.push_back(smell("rl_batch", "warning",
                          str(g * p / mb, " completions per optimizer step (grpo.group_size ", g, " x prompts_per_round ", p,
                              " / mini_batches ", mb, ")"),
                          "tiny RL batches give noisy, unstable updates",
                          "at least 16 completions per step: raise grpo.prompts_per_round or lower grpo.mini_batches",
                          "practitioner-advice.md (bigger batches are more stable; PPO mini-batch 16)"));
  }
  if (trainer == "ppo") {
    const auto mb = number(config, {"ppo", "mini_batch_size"});
    if (mb && *mb < 16)
      out.push_back(smell("rl_batch", "warning", str("ppo.mini_batch_size ", *mb, " completions per optimizer step"),
                          "tiny RL batches give noisy, unstable updates",
                          "ppo.mini_batch_size 16 or more (raise ppo.prompts_per_round to keep the rounds whole)",
                          "practitioner-advice.md (PPO mini-batch 16; prefer large batches)"));
  }
  return out;
}

}  // namespace tune::report

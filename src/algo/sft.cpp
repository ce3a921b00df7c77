// SFT: the loss is -sum log p(label tokens) / (label tokens in the whole optimizer step); the loop
// is: micro-batches -> stepper (accumulate, all-reduce seam, clip, skip non-finite, step) ->
// metrics / eval / checkpoints.
#include "tune/algo/sft.h"

#include <cmath>

#include "tune/algo/evaluate.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/policy.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/data/batch_iterator.h"
#include "tune/model/config.h"
#include "tune/report/symptoms.h"
#include "tune/train/stepper.h"

namespace tune::algo {

void run_sft(const SftConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  // Text: tokenizer, template, data -> token sequences with loss masks.
  TrainingText corpus = load_training_text(cfg.model, cfg.data);
  const auto& train_set = corpus.train;
  const auto& eval_set = corpus.eval;
  if (train_set.samples.empty()) fail("data: no trainable samples after tokenization (", train_set.report().dump(), ")");
  require_label_tokens(corpus, cfg.data);

  data::BatchIterator batches(train_set, iterator_options(cfg.train, cfg.data, cfg.seed, corpus.pad_id));
  const int64_t total_steps = planned_steps(cfg.train, batches.batches_per_epoch());

  log::info("data: ", train_set.samples.size(), " train / ", eval_set.samples.size(), " eval samples, ",
            batches.batches_per_epoch(), " batches per epoch, ", total_steps, " optimizer steps (",
            cfg.train.batch_size, " x ", cfg.train.grad_accum, " per step)",
            train_set.truncated ? str(", ", train_set.truncated, " truncated") : std::string());
  if (train_set.used_fallback) log::warn("the chat template is not append-only: only final assistant turns are trained");

  if (dry_run) return report_dry_run(cfg.model, cfg.method);

  // Model, optimizer, schedule, stepper.
  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  model.train();
  const auto device = model.options().device();
  Optimization opt(policy.trainable, cfg.optim, cfg.train, total_steps);

  const bool has_references = cfg.eval.generate && !corpus.records.eval.empty();
  std::vector<ExactMatchItem> em_items =
      has_references ? exact_match_items(corpus.records.eval, *corpus.masker, cfg.eval.max_samples) : std::vector<ExactMatchItem>{};
  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!em_items.empty()) {
    ckpt_policy.metric_name = "eval_exact_match";
    ckpt_policy.greater_is_better = true;
  } else if (!eval_set.samples.empty()) {
    ckpt_policy.metric_name = "eval_loss";
  }
  Run run(cfg.output_dir, config::to_json(cfg), manifest_files(cfg.model, cfg.data), cfg.train, total_steps, ckpt_policy, cfg.log);

  std::vector<text::TokenizedSample> eval_samples(
      eval_set.samples.begin(),
      eval_set.samples.begin() + std::min<int64_t>(cfg.eval.max_samples, static_cast<int64_t>(eval_set.samples.size())));
  // The symptom watcher (the table of tune/report/symptoms.h, which tune doctor runs too).
  report::SymptomWatcher symptoms("sft");
  auto report_symptoms = [&](const std::vector<report::Symptom>& found) {
    for (const auto& s : found) {
      log::warn("symptom at step ", s.step, ": ", s.message, "\n  remedy: ", s.remedy);
      run.log(s.step, {{"symptom", s.id}, {"message", s.message}, {"remedy", s.remedy}});
    }
  };

  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (eval_samples.empty()) return std::nullopt;
    Json rec;
    double loss = eval_loss(model, eval_samples, cfg.eval.batch_size, corpus.pad_id);
    rec["eval_loss"] = loss;
    std::optional<double> metric = loss;
    if (!em_items.empty()) {
      auto em = exact_match(model, *corpus.tokenizer, em_items, cfg.eval.max_new_tokens, cfg.eval.batch_size);
      rec["eval_exact_match"] = em.accuracy;
      rec["eval_count"] = em.count;
      rec["eval_hit_limit"] = em.hit_limit;
      metric = em.accuracy;
      log::info("eval at step ", at, ": loss ", fixed(loss, 4), ", exact match ", fixed(100 * em.accuracy, 1), "% of ",
                em.count);
      // A few of the answers, for tune report (practitioners judge checkpoints by their bad cases too).
      std::vector<Json> shown;
      for (size_t i = 0; i < em.answers.size() && static_cast<int64_t>(i) < cfg.eval.samples; ++i)
        shown.push_back(Json{{"step", at},
                             {"kind", "eval"},
                             {"prompt", corpus.tokenizer->decode(em_items[em.indices[i]].prompt_ids)},
                             {"completion", em.answers[i]},
                             {"reference", std::string(trim(em_items[em.indices[i]].reference))},
                             {"correct", em.answers[i] == trim(em_items[em.indices[i]].reference)}});
      run.log_samples(shown);
    } else {
      log::info("eval at step ", at, ": loss ", fixed(loss, 4));
    }
    run.log(at, rec);
    std::map<std::string, double> numbers;
    for (auto it = rec.begin(); it != rec.end(); ++it)
      if (it.value().is_number()) numbers[it.key()] = it.value().get<double>();
    report_symptoms(symptoms.observe_eval(at, numbers));
    return metric;
  };

  LoopHooks<data::Batch> hooks;
  hooks.on_start = [&](int64_t step) {
    if (cfg.eval.at_start && step == 0) evaluate(0);
  };
  hooks.count = [](const data::Batch& b) { return static_cast<double>(b.num_label_tokens); };
  hooks.loss = [&](const data::Batch& b) {
    torch::Tensor logp = label_logprobs(model, b);  // [B, T], 0 off the labels
    return train::StepLoss{-logp.sum(), {}};
  };
  hooks.after_step = [&](const train::StepResult& r) {
    if (r.applied) report_symptoms(symptoms.observe(r.step, {{"loss", r.loss}, {"grad_norm", r.grad_norm}}));
  };
  hooks.evaluate = evaluate;
  train_loop(run, opt, batches, cfg.train, cfg.eval.every, cfg.resume, device, hooks);
  export_policy(policy, cfg.lora, std::filesystem::path(cfg.output_dir) / "final");
  log::info("done: ", (std::filesystem::path(cfg.output_dir) / "final").string(),
            policy.use_lora() ? " (PEFT adapter)" : " (Hugging Face model)");
}

}  // namespace tune::algo

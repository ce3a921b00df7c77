// SFT: the loss is -sum log p(label tokens) / (label tokens in the whole optimizer step); the loop
// is: micro-batches -> stepper (accumulate, all-reduce seam, clip, skip non-finite, step) ->
// metrics / eval / checkpoints.
#include "tune/algo/sft.h"

#include <chrono>
#include <cmath>

#include "tune/algo/evaluate.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/policy.h"
#include "tune/algo/run.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/data/batch_iterator.h"
#include "tune/model/config.h"
#include "tune/text/chat_mask.h"
#include "tune/text/dataset.h"
#include "tune/train/stepper.h"

namespace tune::algo {
namespace {

text::ChatTemplate chat_template_for(const ModelSection& m) {
  if (!m.chat_template.empty()) return text::builtin_chat_template(m.chat_template);
  if (auto t = text::load_chat_template(m.path)) return *t;
  usage_fail(m.path, " has no chat template; set model.chat_template to a built-in (",
             join(text::builtin_chat_template_names(), ", "), ")");
}

int32_t pad_id_of(const text::Tokenizer& tok) {
  if (tok.special().pad) return *tok.special().pad;
  if (tok.special().eos) return *tok.special().eos;
  return 0;
}

std::vector<train::ManifestFile> manifest_files(const SftConfig& cfg) {
  std::vector<train::ManifestFile> files;
  for (const auto& d : cfg.data.datasets) files.push_back({"data", d.path});
  if (!cfg.data.eval_path.empty()) files.push_back({"data", cfg.data.eval_path});
  std::filesystem::path m = cfg.model.path;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"})
    if (std::filesystem::exists(m / name)) files.push_back({"tokenizer", m / name});
  files.push_back({"model_config", m / "config.json"});
  return files;
}

}  // namespace

void run_sft(const SftConfig& cfg, bool dry_run) {
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  if (cfg.model.path.empty()) usage_fail("config error: model.path is required");
  if (cfg.data.datasets.empty()) usage_fail("config error: data.datasets is empty: name at least one JSONL file");

  // Text: tokenizer, template, data -> token sequences with loss masks.
  auto tokenizer = text::Tokenizer::load(cfg.model.path);
  text::ChatMasker masker(*tokenizer, text::make_renderer(chat_template_for(cfg.model), *tokenizer),
                          text::parse_mask_mode(cfg.data.mask));
  text::DataSplit split = text::load_data(cfg.data);
  text::TokenizedDataset train_set = text::tokenize_data(split.train, masker, cfg.data);
  text::TokenizedDataset eval_set = text::tokenize_data(split.eval, masker, cfg.data);
  if (train_set.samples.empty()) fail("data: no trainable samples after tokenization (", train_set.report().dump(), ")");
  const int32_t pad_id = pad_id_of(*tokenizer);

  data::IteratorOptions it_opts;
  it_opts.batch_size = cfg.train.batch_size;
  it_opts.packing = cfg.data.packing;
  it_opts.max_seq_len = cfg.data.max_seq_len;
  it_opts.shuffle = cfg.data.shuffle;
  it_opts.seed = static_cast<uint64_t>(cfg.seed);
  it_opts.collate.pad_id = pad_id;
  data::BatchIterator batches(train_set, it_opts);
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches.batches_per_epoch() / cfg.train.grad_accum);
  const int64_t total_steps = cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * steps_per_epoch;

  log::info("data: ", train_set.samples.size(), " train / ", eval_set.samples.size(), " eval samples, ",
            batches.batches_per_epoch(), " batches per epoch, ", total_steps, " optimizer steps (",
            cfg.train.batch_size, " x ", cfg.train.grad_accum, " per step)",
            train_set.truncated ? str(", ", train_set.truncated, " truncated") : std::string());
  if (train_set.used_fallback) log::warn("the chat template is not append-only: only final assistant turns are trained");

  if (dry_run) {
    auto mc = model::ModelConfig::load(cfg.model.path);
    log::info("dry run: model ", model::arch_name(mc.arch), " ", human_count(static_cast<double>(mc.num_parameters())),
              " parameters; method ", cfg.method, "; nothing trained");
    return;
  }

  // Model, optimizer, schedule, stepper.
  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  model.train();
  const auto device = model.options().device();
  auto optimizer = train::make_adamw(policy.trainable, cfg.optim.adamw());
  train::LrSchedule schedule(cfg.optim.schedule_config(), cfg.optim.lr, total_steps);
  train::StepperConfig stepper_cfg;
  stepper_cfg.max_grad_norm = cfg.train.max_grad_norm;
  stepper_cfg.max_consecutive_skips = static_cast<int>(cfg.train.max_consecutive_skips);
  train::Stepper stepper(*optimizer, schedule, stepper_cfg);

  const bool has_references = cfg.eval.generate && !split.eval.empty();
  std::vector<ExactMatchItem> em_items =
      has_references ? exact_match_items(split.eval, masker, cfg.eval.max_samples) : std::vector<ExactMatchItem>{};
  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!em_items.empty()) {
    ckpt_policy.metric_name = "eval_exact_match";
    ckpt_policy.greater_is_better = true;
  } else if (!eval_set.samples.empty()) {
    ckpt_policy.metric_name = "eval_loss";
  }
  Run run(cfg.output_dir, config::to_json(cfg), manifest_files(cfg), cfg.train, total_steps, ckpt_policy);

  train::TrainingState state;
  state.parameters = policy.trainable;
  state.optimizer = optimizer.get();
  state.stepper = &stepper;
  int64_t step = run.resume(cfg.resume, state);
  if (!state.data_position.is_null() && !state.data_position.empty()) batches.restore(state.data_position);

  std::vector<text::TokenizedSample> eval_samples(
      eval_set.samples.begin(),
      eval_set.samples.begin() + std::min<int64_t>(cfg.eval.max_samples, static_cast<int64_t>(eval_set.samples.size())));
  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (eval_samples.empty()) return std::nullopt;
    Json rec;
    double loss = eval_loss(model, eval_samples, cfg.eval.batch_size, pad_id);
    rec["eval_loss"] = loss;
    std::optional<double> metric = loss;
    if (!em_items.empty()) {
      auto em = exact_match(model, *tokenizer, em_items, cfg.eval.max_new_tokens, cfg.eval.batch_size);
      rec["eval_exact_match"] = em.accuracy;
      rec["eval_count"] = em.count;
      metric = em.accuracy;
      log::info("eval at step ", at, ": loss ", fixed(loss, 4), ", exact match ", fixed(100 * em.accuracy, 1), "% of ",
                em.count);
    } else {
      log::info("eval at step ", at, ": loss ", fixed(loss, 4));
    }
    run.log(at, rec);
    return metric;
  };

  if (cfg.eval.at_start && step == 0) evaluate(0);
  auto started = std::chrono::steady_clock::now();
  int64_t tokens_total = 0;
  while (step < total_steps) {
    // One optimizer step's micro-batches; an exhausted epoch rolls over to the next.
    std::vector<data::Batch> micro;
    while (static_cast<int64_t>(micro.size()) < cfg.train.grad_accum) {
      auto b = batches.next();
      if (b) micro.push_back(to_device(*b, device));
    }
    std::vector<double> counts;
    int64_t tokens = 0;
    for (const auto& b : micro) {
      counts.push_back(static_cast<double>(b.num_label_tokens));
      tokens += b.attention_mask.sum().item<int64_t>();
    }
    train::StepResult r = stepper.step(counts, [&](int i) {
      torch::Tensor logp = label_logprobs(model, micro[static_cast<size_t>(i)]);  // [B, T]
      return train::StepLoss{-logp.sum(), {}};
    });
    step = r.step;
    tokens_total += tokens;
    if (!r.applied) log::warn("step ", step + 1, " skipped: ", r.skip_reason);
    run.progress(step, r.loss, r.lr, tokens);
    if (run.due(step, cfg.train.log_every) || step == total_steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      run.log(step, {{"loss", r.loss},
                     {"lr", r.lr},
                     {"grad_norm", r.grad_norm},
                     {"tokens_per_s", secs > 0 ? static_cast<double>(tokens_total) / secs : 0.0},
                     {"epoch", batches.state().epoch},
                     {"skipped_steps", stepper.total_skips()},
                     {"peak_memory_bytes", peak_memory_bytes(device.is_cuda())}});
    }
    const bool last = step == total_steps;
    std::optional<double> metric;
    if (run.due(step, cfg.eval.every) || last) metric = evaluate(step);
    if (run.due(step, cfg.train.save_every) || last) {
      state.data_position = batches.state_json();
      run.save(state, step, metric);
    }
  }
  run.finish();
  export_policy(policy, cfg.lora, std::filesystem::path(cfg.output_dir) / "final");
  log::info("done: ", (std::filesystem::path(cfg.output_dir) / "final").string(),
            policy.use_lora() ? " (PEFT adapter)" : " (Hugging Face model)");
}

}  // namespace tune::algo

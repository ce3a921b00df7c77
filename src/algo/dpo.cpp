// DPO: per pair, sums of completion log-probs under the policy and the reference -> a preference
// loss (preference_losses.h); the step normaliser is the number of pairs, so the loss is the mean
// over pairs whatever the accumulation split. Metrics carry TRL's names.
#include "tune/algo/dpo.h"

#include <cstdint>
#include <unordered_map>

#include "tune/algo/evaluate.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/policy.h"
#include "tune/algo/reference.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/data/batch_iterator.h"
#include "tune/model/config.h"
#include "tune/model/linear.h"
#include "tune/model/weights.h"
#include "tune/report/symptoms.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"
#include "tune/train/communicator.h"
#include "tune/train/stepper.h"

namespace tune::algo {
namespace {

// A pair's tokens as a lookup key for precomputed reference log-probs (equal pairs have equal
// reference log-probs, so collisions of identical content are harmless).
std::string pair_key(const int64_t* chosen, int64_t n_chosen, const int64_t* rejected, int64_t n_rejected) {
  std::string key;
  key.reserve(static_cast<size_t>(n_chosen + n_rejected + 1) * sizeof(int64_t));
  key.append(reinterpret_cast<const char*>(chosen), static_cast<size_t>(n_chosen) * sizeof(int64_t));
  key.append(8, '\xff');
  key.append(reinterpret_cast<const char*>(rejected), static_cast<size_t>(n_rejected) * sizeof(int64_t));
  return key;
}

std::vector<std::string> batch_keys(const data::PreferenceBatch& b) {
  torch::Tensor ids = b.batch.input_ids.to(torch::kCPU).contiguous();          // [2B, T]
  torch::Tensor len = b.batch.attention_mask.to(torch::kCPU).sum(1).contiguous();  // [2B]
  const int64_t B = b.num_pairs, T = ids.size(1);
  const int64_t* p = ids.data_ptr<int64_t>();
  const int64_t* n = len.data_ptr<int64_t>();
  std::vector<std::string> keys;
  for (int64_t i = 0; i < B; ++i) keys.push_back(pair_key(p + i * T, n[i], p + (B + i) * T, n[B + i]));
  return keys;
}

// The reference side of the loss: the shared reference model, or (dpo.reference: precompute) a
// table of its log-probs computed before training.
class Reference {
 public:
  Reference(const DpoConfig& cfg, Policy& policy)
      : policy_(policy),
        table_mode_(needs_reference(cfg.dpo.loss_config().type) && cfg.dpo.reference == "precompute"),
        model_(policy, policy.base_dir.string(),
               !needs_reference(cfg.dpo.loss_config().type) ? ReferenceMode::none
               : table_mode_                                ? ReferenceMode::initial
                                                            : ReferenceMode::frozen) {}

  std::string describe() const {
    if (table_mode_) return "log-probs precomputed before training, by " + model_.describe();
    return model_.describe();
  }

  // The first `count` pairs of `pairs` (all by default). Must run before any update (and before a
  // resume loads trained weights).
  void precompute(const std::vector<text::TokenizedPair>& pairs, int32_t pad_id, int64_t batch_size,
                  size_t count = SIZE_MAX) {
    if (!table_mode_) return;
    count = std::min(count, pairs.size());
    if (count == 0) return;
    auto started = std::chrono::steady_clock::now();
    const auto device = policy_.model->options().device();
    for (size_t i = 0; i < count; i += static_cast<size_t>(batch_size)) {
      auto b = to_device(pair_batch(pairs, i, std::min(count, i + static_cast<size_t>(batch_size)), pad_id), device);
      SequenceLogps lp = forward(b);
      auto keys = batch_keys(b);
      auto c = lp.chosen.to(torch::kCPU), r = lp.rejected.to(torch::kCPU);
      for (size_t k = 0; k < keys.size(); ++k)
        table_[keys[k]] = {c[static_cast<int64_t>(k)].item<float>(), r[static_cast<int64_t>(k)].item<float>()};
    }
    log::info("reference: log-probs of ", count, " pairs precomputed in ",
              fixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 1), " s");
  }

  SequenceLogps operator()(const data::PreferenceBatch& b) {
    SequenceLogps out;
    if (!model_.active()) return out;
    if (!table_mode_) return forward(b);
    out = completion_lengths(b);
    auto keys = batch_keys(b);
    std::vector<float> c, r;
    for (const auto& k : keys) {
      auto it = table_.find(k);
      if (it == table_.end()) {
        // Under LoRA the adapters-off network is still the reference; a full fine-tune has moved on.
        if (policy_.use_lora()) return forward(b);
        fail("dpo: reference log-probs of a pair were not precomputed (dpo.reference: precompute)");
      }
      c.push_back(it->second.first);
      r.push_back(it->second.second);
    }
    const auto device = b.batch.input_ids.device();
    out.chosen = torch::tensor(c).to(device);
    out.rejected = torch::tensor(r).to(device);
    return out;
  }

 private:
  SequenceLogps forward(const data::PreferenceBatch& b) {
    return model_.run([&](model::CausalLM& m) { return sequence_logps(m, b); });
  }
  Policy& policy_;
  bool table_mode_;
  ReferenceModel model_;
  std::unordered_map<std::string, std::pair<float, float>> table_;
};

}  // namespace

void run_dpo(const DpoConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  const PreferenceLossConfig loss_cfg = cfg.dpo.loss_config();
  if (loss_cfg.type == PreferenceLossType::robust && cfg.dpo.label_smoothing >= 0.5)
    usage_fail("config error: dpo.label_smoothing must be < 0.5 for the robust loss");
  TrainingText data = load_preference_data(cfg.model, cfg.data);

  data::PreferenceBatchIterator batches(data.train, iterator_options(cfg.train, cfg.data, cfg.seed, data.pad_id));
  const int64_t total_steps = planned_steps(cfg.train, batches.batches_per_epoch());
  log::info("dpo: loss ", cfg.dpo.loss, ", beta ", cfg.dpo.beta, ", ", total_steps, " optimizer steps (",
            cfg.train.batch_size, " pairs x ", cfg.train.grad_accum, " per step)");
  if (dry_run) return report_dry_run(cfg.model, cfg.method);

  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  const auto device = model.options().device();
  Reference reference(cfg, policy);
  log::info("reference: ", reference.describe());

  Optimization opt(policy.trainable, cfg.optim, cfg.train, total_steps);

  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!data.eval.pairs.empty()) {
    ckpt_policy.metric_name = "eval_loss";
  }
  Run run(cfg.output_dir, config::to_json(cfg), manifest_files(cfg.model, cfg.data), cfg.train, total_steps,
          ckpt_policy, cfg.log);

  // Before any update (and before a resume loads trained weights): training and evaluation pairs.
  const size_t eval_pairs = std::min<size_t>(data.eval.pairs.size(), static_cast<size_t>(cfg.eval.max_pairs));
  reference.precompute(data.train.pairs, data.pad_id, cfg.eval.batch_size);
  reference.precompute(data.eval.pairs, data.pad_id, cfg.eval.batch_size, eval_pairs);
  model.train();

  // The symptom watcher (the table of tune/report/symptoms.h, which tune doctor runs too).
  report::SymptomWatcher symptoms("dpo");
  auto report_symptoms = [&](const std::vector<report::Symptom>& found) {
    for (const auto& s : found) {
      log::warn("symptom at step ", s.step, ": ", s.message, "\n  remedy: ", s.remedy);
      run.log(s.step, {{"symptom", s.id}, {"message", s.message}, {"remedy", s.remedy}});
    }
  };

  // Greedy completions of the first eval prompts, beside their chosen and rejected answers.
  std::vector<ExactMatchItem> sample_items;
  std::vector<const text::Sample*> sample_records;
  for (const auto& s : data.records.eval) {
    if (static_cast<int64_t>(sample_items.size()) >= cfg.eval.samples) break;
    if (s.kind != text::SampleKind::preference || s.messages.empty()) continue;
    std::string chosen;
    for (const auto& m : s.chosen) chosen += m.content;
    sample_items.push_back({data.masker->prompt(s.messages).input_ids, chosen});
    sample_records.push_back(&s);
  }
  auto write_samples = [&](int64_t at) {
    if (sample_items.empty() || !train::world().is_main()) return;  // rank 0 writes them
    rollout::RolloutEngine engine(model, rollout::engine_options(*data.tokenizer));  // restores the train mode itself
    rollout::SamplingConfig greedy;
    greedy.max_new_tokens = eval_generation_limit(sample_items, *data.tokenizer);
    greedy.temperature = 0;
    torch::Generator unused = rollout::make_generator(device, 0);  // greedy draws no random number
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& item : sample_items) prompts.push_back(item.prompt_ids);
    auto out = engine.rollout(prompts, 1, greedy, unused);
    std::vector<Json> shown;
    for (size_t i = 0; i < sample_items.size() && i < out.samples.size(); ++i) {
      std::string rejected;
      for (const auto& m : sample_records[i]->rejected) rejected += m.content;
      const std::string completion(trim(out.samples[i].text));
      shown.push_back(Json{{"step", at},
                           {"kind", "eval"},
                           {"prompt", data.tokenizer->decode(sample_items[i].prompt_ids)},
                           {"completion", completion},
                           {"chosen", sample_items[i].reference},
                           {"rejected", rejected},
                           {"matches_chosen", completion == trim(sample_items[i].reference)}});
    }
    run.log_samples(shown);
  };

  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (eval_pairs == 0) return std::nullopt;
    torch::NoGradGuard no_grad;
    model.eval();
    double loss = 0;
    std::map<std::string, double> sums;
    // Data parallelism: each rank scores a block of the pairs; the sums are added over ranks.
    const auto [first, last] = train::block_share(eval_pairs, train::world());
    for (size_t i = first; i < last; i += static_cast<size_t>(cfg.eval.batch_size)) {
      auto b = to_device(pair_batch(data.eval.pairs, i, std::min(last, i + static_cast<size_t>(cfg.eval.batch_size)),
                                    data.pad_id),
                         device);
      SequenceLogps ref = reference(b);
      SequenceLogps lp = sequence_logps(model, b);
      auto res = preference_loss(loss_cfg, lp, ref);
      loss += res.losses.sum().item<double>();
      for (const auto& [k, v] : preference_metric_sums(res, lp)) sums[k] += v;
    }
    model.train();
    if (train::split_evenly(eval_pairs, train::world())) train::all_reduce_sums(train::world(), loss, sums);
    const double n = static_cast<double>(eval_pairs);
    Json rec = {{"eval_loss", loss / n}, {"eval_pairs", eval_pairs}};
    for (const auto& [k, v] : sums) rec["eval_" + k] = v / n;
    log::info("eval at step ", at, ": loss ", fixed(loss / n, 4), ", rewards/accuracies ",
              fixed(100 * sums["rewards/accuracies"] / n, 1), "%, rewards/margins ", fixed(sums["rewards/margins"] / n, 4));
    run.log(at, rec);
    write_samples(at);
    model.train();
    if (cfg.dpo.symptoms) {
      std::map<std::string, double> numbers;
      for (auto it = rec.begin(); it != rec.end(); ++it)
        if (it.value().is_number()) numbers[it.key()] = it.value().get<double>();
      report_symptoms(symptoms.observe_eval(at, numbers));
    }
    return loss / n;
  };

  LoopHooks<data::PreferenceBatch> hooks;
  hooks.count = [](const data::PreferenceBatch& b) { return static_cast<double>(b.num_pairs); };
  hooks.loss = [&](const data::PreferenceBatch& b) {
    SequenceLogps ref = reference(b);
    SequenceLogps lp = sequence_logps(model, b);
    PreferenceLossResult res = preference_loss(loss_cfg, lp, ref);
    return train::StepLoss{res.losses.sum(), train::metric_sums(preference_metric_sums(res, lp), static_cast<double>(b.num_pairs))};
  };
  hooks.after_step = [&](const train::StepResult& r) {
    if (!cfg.dpo.symptoms || !r.applied) return;
    auto m = r.metrics;
    m["loss"] = r.loss;
    report_symptoms(symptoms.observe(r.step, m));
  };
  hooks.evaluate = evaluate;
  train_loop(run, opt, batches, cfg.train, cfg.eval.every, cfg.resume, device, hooks);
  export_policy(policy, cfg.lora, std::filesystem::path(cfg.output_dir) / "final");
  log::info("done: ", (std::filesystem::path(cfg.output_dir) / "final").string(),
            policy.use_lora() ? " (PEFT adapter)" : " (Hugging Face model)");
}

}  // namespace tune::algo

// GRPO: rounds of rollouts -> rewards -> group advantages -> `mu` x `mini_batches` optimizer steps
// of the shared policy loss. Everything a step needs from the round (old and reference log-probs,
// advantages, masks) is computed once per round; the step itself reads as the loss.
#include "tune/algo/grpo.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include "algo/grpo_round.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/model_reward.h"
#include "tune/algo/policy.h"
#include "tune/algo/policy_loss.h"
#include "tune/algo/reference.h"
#include "tune/algo/rl_symptoms.h"
#include "tune/algo/rollout_scoring.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/model/config.h"
#include "tune/ops/token_logprob.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"
#include "tune/rollout/sampling.h"
#include "tune/text/dataset.h"

namespace tune::algo {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The training prompts in a seeded order, reshuffled every epoch; its position is a checkpoint's.
class PromptOrder {
 public:
  PromptOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) { plan(); }
  int64_t next() {
    if (index_ >= size_) {
      ++epoch_;
      index_ = 0;
      plan();
    }
    return order_[static_cast<size_t>(index_++)];
  }
  int64_t epoch() const { return epoch_; }
  Json state() const { return {{"epoch", epoch_}, {"index", index_}}; }
  void restore(const Json& s) {
    epoch_ = s.at("epoch").get<int64_t>();
    index_ = s.at("index").get<int64_t>();
    plan();
  }

 private:
  void plan() {
    order_.resize(static_cast<size_t>(size_));
    for (int64_t i = 0; i < size_; ++i) order_[static_cast<size_t>(i)] = i;
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch_) * 0x9E3779B97F4A7C15ull);
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  int64_t size_, epoch_ = 0, index_ = 0;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

// A torch generator's state as hex text (checkpoints) and back.
std::string generator_hex(torch::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  torch::Tensor state = gen.get_state().contiguous();
  const auto* p = state.data_ptr<uint8_t>();
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int64_t i = 0; i < state.numel(); ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

void set_generator_hex(torch::Generator& gen, const std::string& hex) {
  TUNE_CHECK(hex.size() % 2 == 0, "checkpoint: the rollout RNG state is corrupt");
  auto state = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  auto* p = state.data_ptr<uint8_t>();
  for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Appends complete lines to a log file (samples.jsonl), flushed: a crash loses no earlier line.
void append_lines(const std::filesystem::path& path, const std::string& text) {
  if (text.empty()) return;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) fail("cannot open ", path.string(), " for appending: ", std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
  std::fclose(f);
  if (!ok) fail("cannot write to ", path.string(), ": ", std::strerror(errno));
}

// A supervised batch view of round rows [first, first + n), cut to its longest row.
data::Batch rows_batch(const RoundRows& rows, int64_t first, int64_t n) {
  data::Batch b;
  auto am = rows.attention_mask.narrow(0, first, n);
  const int64_t width = std::max<int64_t>(2, am.sum(1).max().item<int64_t>());
  b.input_ids = rows.input_ids.narrow(0, first, n).narrow(1, 0, width);
  b.attention_mask = am.narrow(1, 0, width);
  b.labels = rows.labels.narrow(0, first, n).narrow(1, 0, width);
  b.num_samples = n;
  return b;  // right padding: positions 0..T-1, no mask needed (see label_logprobs)
}

// log p(token t | < t) at `temperature` and the policy's entropy at each label position, both
// [B, T] (0 off the labels), with the graph: the loss's log-probs, the entropy metric and bonus.
std::pair<torch::Tensor, torch::Tensor> logp_and_entropy(model::CausalLM& model, const data::Batch& batch,
                                                         double temperature) {
  model::ForwardArgs args;
  args.input_ids = batch.input_ids;                   // [B, T], right padded: no mask needed
  torch::Tensor hidden = model.forward_hidden(args);  // [B, T, D]
  const int64_t B = hidden.size(0), T = hidden.size(1), D = hidden.size(2);
  torch::Tensor h = hidden.narrow(1, 0, T - 1).reshape({B * (T - 1), D});         // position t-1 predicts t
  torch::Tensor labels = batch.labels.narrow(1, 1, T - 1).reshape({B * (T - 1)});  // [B (T-1)]
  ops::TokenLogprobOptions opts;
  opts.temperature = temperature;
  opts.compute_entropy = true;
  auto res = ops::token_logprob(model.logits(h), labels, opts);
  auto on = labels.ne(ops::kIgnoreIndex).to(res.entropy.scalar_type());
  torch::Tensor first = torch::zeros({B, 1}, res.logprob.options());
  return {torch::cat({first, res.logprob.view({B, T - 1})}, 1), torch::cat({first, (res.entropy * on).view({B, T - 1})}, 1)};
}

torch::Tensor cols(const torch::Tensor& x, int64_t first, int64_t n, int64_t width) {
  return x.defined() ? x.narrow(0, first, n).narrow(1, 0, width) : x;
}

ops::KlKind kl_kind(const std::string& name) {
  if (name == "k1") return ops::KlKind::k1;
  if (name == "k2") return ops::KlKind::k2;
  return ops::KlKind::k3;
}

PolicyLossConfig loss_config(const GrpoConfig& cfg) {
  PolicyLossConfig c;
  c.objective = parse_policy_objective(cfg.grpo.objective);
  c.ratio_level = parse_ratio_level(cfg.grpo.ratio);
  c.aggregation = parse_loss_aggregation(cfg.grpo.loss);
  c.clip_low = cfg.grpo.clip_low;
  c.clip_high = cfg.grpo.clip_high;
  c.dual_clip = cfg.grpo.dual_clip;
  c.log_ratio_clamp = cfg.grpo.log_ratio_clamp;
  c.beta = cfg.grpo.beta;
  c.kl_estimator = kl_kind(cfg.grpo.kl);
  c.entropy_coef = cfg.grpo.entropy_coef;
  c.max_completion_length = cfg.rollout.max_new_tokens;
  return c;
}

// Mean and population std of the judged values.
std::pair<double, double> mean_std(const std::vector<double>& v) {
  if (v.empty()) return {0, 0};
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size()))};
}

}  // namespace

void run_grpo(const GrpoConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  if (cfg.reward.terms.empty() && cfg.reward.command.empty())
    usage_fail("config error: reward.terms is empty: name at least one reward (docs/rewards.md)");
  if (cfg.data.datasets.empty()) usage_fail("config error: data.datasets is empty: name an RL prompt file");
  if (cfg.model.path.empty()) usage_fail("config error: model.path is required");
  cfg.rollout.validate();
  if (!cfg.rollout.samples_the_policy())
    log::warn("rollout: top_k / top_p / repetition_penalty change the sampled distribution: the tokens are no longer "
              "drawn from the policy whose log-probs the loss uses (docs/rollout.md); RL presets leave them off");

  // Prompts, rendered with the model's chat template; the eval split comes from data.eval_*.
  auto tokenizer = text::Tokenizer::load(cfg.model.path);
  text::ChatMasker masker(*tokenizer, text::make_renderer(chat_template_for(cfg.model), *tokenizer));
  text::DataSplit split = text::load_data(cfg.data);
  auto render = [&](const std::vector<text::Sample>& samples, int64_t limit) {
    std::vector<rollout::RolloutPrompt> out;
    for (const auto& s : samples) {
      if (static_cast<int64_t>(out.size()) >= limit) break;
      out.push_back(rollout::render_prompt(rollout::as_prompt_sample(s), masker));
    }
    return out;
  };
  const auto train_prompts = render(split.train, INT64_MAX);
  const auto eval_prompts = render(split.eval, cfg.eval.max_prompts);
  if (train_prompts.empty()) usage_fail("data: no training prompts in ", cfg.data.datasets.front().path);

  const int64_t steps_per_round = cfg.grpo.mu * cfg.grpo.mini_batches;
  const int64_t rounds_per_epoch =
      std::max<int64_t>(1, static_cast<int64_t>(train_prompts.size()) / cfg.grpo.prompts_per_round);
  const int64_t total_steps =
      cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * rounds_per_epoch * steps_per_round;
  const int64_t rows_per_round = cfg.grpo.prompts_per_round * cfg.grpo.group_size;
  if (rows_per_round % cfg.grpo.mini_batches != 0)
    usage_fail("config error: grpo.mini_batches (", cfg.grpo.mini_batches, ") must divide prompts_per_round x group_size (",
               rows_per_round, ")");
  log::info("grpo: ", train_prompts.size(), " train / ", eval_prompts.size(), " eval prompts; rounds of ",
            cfg.grpo.prompts_per_round, " prompts x G ", cfg.grpo.group_size, ", ", steps_per_round,
            " optimizer steps each (mu ", cfg.grpo.mu, " x ", cfg.grpo.mini_batches, " mini-batches); ", total_steps,
            " steps; loss ", cfg.grpo.loss, ", beta ", cfg.grpo.beta, cfg.grpo.dynamic_sampling ? ", dynamic sampling" : "");
  if (dry_run) return report_dry_run(cfg.model, cfg.method);

  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  const auto device = model.options().device();
  if (cfg.grpo.ref_sync_every > 0 && policy.use_lora())
    usage_fail("config error: grpo.ref_sync_every needs method: full (under LoRA the reference is the base model)");
  ReferenceModel reference(policy, cfg.model.path, cfg.grpo.beta > 0 ? ReferenceMode::frozen : ReferenceMode::none);
  log::info("reference: ", reference.describe());
  reward::Composite rewards = build_reward(cfg.reward);
  rollout::RolloutEngine engine(model, rollout::engine_options(*tokenizer, cfg.engine, &policy.lora));
  torch::Generator generator = rollout::make_generator(device, static_cast<uint64_t>(cfg.seed));
  PromptOrder order(static_cast<int64_t>(train_prompts.size()), static_cast<uint64_t>(cfg.data.seed));
  const PolicyLossConfig loss_cfg = loss_config(cfg);

  Optimization opt(policy.trainable, cfg.optim, cfg.train, total_steps);
  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!eval_prompts.empty()) {
    ckpt_policy.metric_name = "eval_pass@1";
    ckpt_policy.greater_is_better = true;
  }
  std::vector<train::ManifestFile> files = manifest_files(cfg.model, cfg.data);
  Run run(cfg.output_dir, config::to_json(cfg), files, cfg.train, total_steps, ckpt_policy);
  train::TrainingState state;
  state.parameters = opt.parameters;
  state.optimizer = opt.optimizer.get();
  state.stepper = opt.stepper.get();
  int64_t step = run.resume(cfg.resume, state);
  if (state.data_position.is_object() && state.data_position.contains("prompts")) {
    order.restore(state.data_position.at("prompts"));
    set_generator_hex(generator, state.data_position.at("rollout_rng").get<std::string>());
    rewards.restore(state.data_position.value("reward", Json::object()));
  }
  auto save = [&](std::optional<double> metric) {
    state.data_position = {{"prompts", order.state()}, {"rollout_rng", generator_hex(generator)},
                           {"reward", rewards.state()}};
    run.save(state, step, metric);
  };

  // The samples of a few completions per round: practitioners judge RL by bad cases.
  const std::filesystem::path samples_path = std::filesystem::path(cfg.output_dir) / "samples.jsonl";
  auto write_samples = [&](const std::string& kind, int64_t at, const std::vector<RoundSample>& samples, int64_t n) {
    std::string text;
    for (int64_t i = 0; i < std::min<int64_t>(n, static_cast<int64_t>(samples.size())); ++i) {
      const auto& s = samples[static_cast<size_t>(i)];
      Json j = {{"step", at}, {"kind", kind}, {"prompt", s.prompt}, {"completion", s.completion},
                {"reward", s.reward ? Json(*s.reward) : Json()}, {"terms", s.terms}, {"advantage", s.advantage},
                {"length", s.length}, {"finish", s.finish}};
      text += j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    }
    append_lines(samples_path, text);
  };

  // Held-out pass@1: greedy and one sample per prompt at the rollout temperature.
  const std::string pass_term = cfg.eval.pass_term.empty() ? rewards.names().front() : cfg.eval.pass_term;
  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (eval_prompts.empty()) return std::nullopt;
    Json rec;
    std::optional<double> metric;
    for (const bool greedy : {true, false}) {
      if (greedy ? !cfg.eval.greedy : !cfg.eval.sampled) continue;
      rollout::SamplingConfig sampling = cfg.rollout;
      if (greedy) sampling.temperature = 0;
      int64_t passed = 0, judged = 0, cut = 0;
      double reward_sum = 0;
      std::vector<RoundSample> shown;
      for (size_t first = 0; first < eval_prompts.size(); first += static_cast<size_t>(cfg.eval.batch_size)) {
        const size_t last = std::min(eval_prompts.size(), first + static_cast<size_t>(cfg.eval.batch_size));
        std::vector<rollout::RolloutPrompt> chunk(eval_prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                                  eval_prompts.begin() + static_cast<std::ptrdiff_t>(last));
        auto r = engine.rollout(rollout::prompt_ids(chunk), 1, sampling, generator);
        std::vector<reward::Sample> rs;
        for (const auto& info : r.samples) rs.push_back(reward_sample(chunk[static_cast<size_t>(info.prompt_index)], info));
        reward::Scores scores = rewards.score_terms(rs);
        const auto* term = &scores.terms.front();
        for (const auto& t : scores.terms)
          if (t.name == pass_term) term = &t;
        for (size_t i = 0; i < rs.size(); ++i) {
          cut += r.samples[i].truncated;
          if (scores.total[i]) reward_sum += *scores.total[i];
          if (!term->values[i]) continue;
          ++judged;
          passed += *term->values[i] >= cfg.eval.pass_threshold;
          if (greedy && shown.size() < 4)
            shown.push_back({0, rs[i].prompt, rs[i].completion, scores.total[i], Json::object(), 0,
                             r.samples[i].completion_length, r.samples[i].truncated, ""});
        }
      }
      const std::string key = greedy ? "eval_pass@1_greedy" : "eval_pass@1_sampled";
      const double rate = judged > 0 ? static_cast<double>(passed) / static_cast<double>(judged) : 0.0;
      rec[key] = rate;
      rec[greedy ? "eval_reward_greedy" : "eval_reward_sampled"] = reward_sum / static_cast<double>(eval_prompts.size());
      rec[greedy ? "eval_truncated_greedy" : "eval_truncated_sampled"] =
          static_cast<double>(cut) / static_cast<double>(eval_prompts.size());
      if (!metric || greedy) metric = rate;
      if (greedy) write_samples("eval", at, shown, 4);
    }
    rec["eval_pass@1"] = metric ? *metric : 0.0;
    rec["eval_prompts"] = eval_prompts.size();
    log::info("eval at step ", at, ": pass@1 greedy ",
              rec.contains("eval_pass@1_greedy") ? fixed(100 * rec["eval_pass@1_greedy"].get<double>(), 1) + "%" : "-",
              ", sampled ",
              rec.contains("eval_pass@1_sampled") ? fixed(100 * rec["eval_pass@1_sampled"].get<double>(), 1) + "%" : "-",
              " of ", eval_prompts.size());
    run.log(at, rec);
    return metric;
  };

  // Trainer-side log-probs (and entropies) of round rows, no gradients, the policy as it is now.
  const int64_t micro = cfg.train.batch_size;
  auto score_rows = [&](RoundRows& rows, bool need_old) {
    torch::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.eval();
    const int64_t N = rows.size(), T = rows.input_ids.size(1);
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    if (need_old) rows.old_logp = torch::zeros({N, T}, opts);
    for (int64_t first = 0; first < N; first += micro) {
      const int64_t n = std::min(micro, N - first);
      data::Batch b = rows_batch(rows, first, n);
      const int64_t w = b.input_ids.size(1);
      if (need_old) rows.old_logp.narrow(0, first, n).narrow(1, 0, w).copy_(label_logprobs(model, b, cfg.rollout.temperature));
    }
    model.train(was_training);
    if (reference.active()) {
      rows.ref_logp = torch::zeros({N, T}, opts);
      for (int64_t first = 0; first < N; first += micro) {
        const int64_t n = std::min(micro, N - first);
        data::Batch b = rows_batch(rows, first, n);
        const int64_t w = b.input_ids.size(1);
        rows.ref_logp.narrow(0, first, n).narrow(1, 0, w).copy_(
            reference.run([&](model::CausalLM& m) { return label_logprobs(m, b, cfg.rollout.temperature); }));
      }
    }
  };

  RoundOptions round_opts;
  round_opts.group_size = cfg.grpo.group_size;
  round_opts.baseline = cfg.grpo.baseline;
  round_opts.scale = cfg.grpo.scale;
  round_opts.std_eps = cfg.grpo.std_eps;
  round_opts.mask_truncated = cfg.grpo.mask_truncated;
  round_opts.drop_zero_variance = cfg.grpo.dynamic_sampling;

  RlSymptomDetector symptoms;
  int64_t last_eval = step;
  if (cfg.eval.at_start && step == 0) evaluate(0);
  model.train();
  const auto started = Clock::now();
  int64_t rollout_tokens_total = 0, rounds_without_signal = 0;
  while (step < total_steps) {
    // --- One round: rollouts, rewards, advantages (more rollouts under dynamic sampling).
    double t_generate = 0, t_score = 0;
    RoundRows rows;
    std::vector<double> judged_rewards;
    std::map<std::string, std::pair<double, int64_t>> term_sums;
    int64_t groups = 0, flat_groups = 0, completion_tokens = 0, truncated = 0, nulls = 0, max_len = 0, samples_n = 0;
    const int64_t attempts = cfg.grpo.dynamic_sampling ? 1 + cfg.grpo.max_sampling_rounds : 1;
    for (int64_t attempt = 0; attempt < attempts && rows.size() < rows_per_round; ++attempt) {
      const int64_t want = attempt == 0 ? cfg.grpo.prompts_per_round
                                        : (rows_per_round - rows.size() + cfg.grpo.group_size - 1) / cfg.grpo.group_size;
      std::vector<int64_t> picked;
      std::vector<rollout::RolloutPrompt> prompts;
      for (int64_t k = 0; k < want; ++k) {
        picked.push_back(order.next());
        prompts.push_back(train_prompts[static_cast<size_t>(picked.back())]);
      }
      auto t0 = Clock::now();
      auto r = engine.rollout(rollout::prompt_ids(prompts), cfg.grpo.group_size, cfg.rollout, generator);
      t_generate += seconds_since(t0);
      t0 = Clock::now();
      std::vector<reward::Sample> rs;
      for (const auto& info : r.samples) rs.push_back(reward_sample(prompts[static_cast<size_t>(info.prompt_index)], info));
      reward::Scores scores = rewards.score_terms(rs);
      t_score += seconds_since(t0);
      // Round statistics over everything sampled (kept or not).
      for (size_t i = 0; i < rs.size(); ++i) {
        ++samples_n;
        if (scores.total[i]) judged_rewards.push_back(*scores.total[i]);
        else ++nulls;
        for (const auto& t : scores.terms)
          if (t.values[i]) {
            term_sums[t.name].first += *t.values[i];
            term_sums[t.name].second += 1;
          }
        completion_tokens += r.samples[i].completion_length;
        max_len = std::max(max_len, r.samples[i].completion_length);
        truncated += r.samples[i].truncated;
      }
      ScoredRound scored = score_round(r, rs, scores, picked, round_opts);
      groups += scored.groups;
      flat_groups += scored.zero_variance_groups;
      rows.append(scored.rows);
    }
    rollout_tokens_total += completion_tokens;
    if (rows.size() > rows_per_round) rows = rows.select([&] {
        std::vector<int64_t> keep(static_cast<size_t>(rows_per_round));
        for (int64_t i = 0; i < rows_per_round; ++i) keep[static_cast<size_t>(i)] = i;
        return keep;
      }());
    if (rows.size() == 0) {
      // Every group was without signal even after the extra rounds: nothing to learn from; the
      // step does not advance, and the skip counts toward the stepper's limit.
      // Every group was without signal even after the extra rollouts: nothing to learn from, so no
      // step is made; too many such rounds in a row stop the run (the prompts do not suit the model).
      if (++rounds_without_signal >= cfg.train.max_consecutive_skips)
        fail("grpo: ", rounds_without_signal, " rounds in a row had no group with reward variance (", groups,
             " groups in the last, ", cfg.grpo.max_sampling_rounds, " extra rollouts each): the model solves every ",
             "prompt always or never; run `tune probe` on the model and prompts (RL needs prompts solved sometimes), ",
             "or train without grpo.dynamic_sampling");
      log::warn("grpo: no group with reward variance in this round (", groups, " groups): no step made (",
                rounds_without_signal, " in a row)");
      continue;
    }
    rounds_without_signal = 0;
    auto t0 = Clock::now();
    score_rows(rows, cfg.grpo.mu > 1);
    const double t_reference = seconds_since(t0);
    write_samples("train", step + 1, rows.samples, cfg.grpo.log_samples);

    // Round metrics, logged with each of its steps.
    auto [reward_mean, reward_std] = mean_std(judged_rewards);
    Json round = {{"reward", reward_mean},
                  {"reward_std", reward_std},
                  {"completion_length", samples_n ? static_cast<double>(completion_tokens) / samples_n : 0.0},
                  {"completion_length_max", max_len},
                  {"truncated", samples_n ? static_cast<double>(truncated) / samples_n : 0.0},
                  {"reward_null", nulls},
                  {"zero_variance_groups", groups ? static_cast<double>(flat_groups) / groups : 0.0},
                  {"groups_sampled", groups},
                  {"rows_trained", rows.size()},
                  {"rollout_tokens_per_s", t_generate > 0 ? completion_tokens / t_generate : 0.0},
                  {"time/generate", t_generate},
                  {"time/score", t_score},
                  {"time/reference", t_reference}};
    for (const auto& [name, sum] : term_sums) round["reward/" + name] = sum.first / static_cast<double>(sum.second);

    // --- mu passes of mini_batches optimizer steps over the round's rows.
    const int64_t N = rows.size(), per_step = N / cfg.grpo.mini_batches;
    bool save_due = false;
    for (int64_t pass = 0; pass < cfg.grpo.mu && step < total_steps; ++pass) {
      for (int64_t mb = 0; mb < cfg.grpo.mini_batches && step < total_steps; ++mb) {
        const auto t_train0 = Clock::now();
        const int64_t base = mb * per_step;
        std::vector<double> counts;
        std::vector<std::pair<int64_t, int64_t>> micro_rows;
        for (int64_t first = base; first < base + per_step; first += micro) {
          const int64_t n = std::min(micro, base + per_step - first);
          micro_rows.emplace_back(first, n);
          counts.push_back(policy_loss_count(loss_cfg, rows.mask.narrow(0, first, n)));
        }
        double gap_max = 0, ratio_min = 1, ratio_max = 1;
        train::StepResult r = opt.stepper->step(counts, [&](int i) {
          auto [first, n] = micro_rows[static_cast<size_t>(i)];
          data::Batch b = rows_batch(rows, first, n);
          const int64_t w = b.input_ids.size(1);
          PolicyLossInputs in;
          std::tie(in.logp, in.entropy) = logp_and_entropy(model, b, cfg.rollout.temperature);  // [n, w] each
          in.mask = cols(rows.mask, first, n, w);
          in.old_logp = cols(rows.old_logp, first, n, w);  // undefined when mu = 1: logp.detach()
          in.ref_logp = cols(rows.ref_logp, first, n, w);
          in.advantages = rows.advantages.narrow(0, first, n);
          PolicyLossResult res = policy_loss(loss_cfg, in);
          if (pass == 0) {
            // The sampler's log-probs against the trainer's, before this round's first update.
            auto trainer = (in.old_logp.defined() ? in.old_logp : in.logp.detach());
            auto on = cols(rows.labels, first, n, w).ne(ops::kIgnoreIndex);
            auto diff = (trainer - cols(rows.sampler_logp, first, n, w)).abs().masked_fill(on.logical_not(), 0);
            gap_max = std::max(gap_max, diff.max().item<double>());
          }
          ratio_min = std::min(ratio_min, res.ratio_min);
          ratio_max = std::max(ratio_max, res.ratio_max);
          return train::StepLoss{res.loss_sum, res.metrics};
        });
        const double t_train = seconds_since(t_train0);
        if (!r.applied) continue;
        step = r.step;
        run.progress(step, r.loss, r.lr, completion_tokens / steps_per_round);
        Json rec = {{"loss", r.loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm}};
        for (const auto& [k, v] : r.metrics) rec[k] = v;
        for (auto it = round.begin(); it != round.end(); ++it) rec[it.key()] = it.value();
        rec["ratio/min"] = ratio_min;
        rec["ratio/max"] = ratio_max;
        if (pass == 0) rec["sampler_logp_gap_max"] = gap_max;
        rec["time/train"] = t_train;
        rec["epoch"] = order.epoch();
        rec["skipped_steps"] = opt.stepper->total_skips();
        rec["peak_memory_bytes"] = peak_memory_bytes(device);
        const double secs = seconds_since(started);
        rec["rollout_tokens_per_s_overall"] = secs > 0 ? rollout_tokens_total / secs : 0.0;
        if (run.due(step, cfg.train.log_every) || step == total_steps) run.log(step, rec);
        if (cfg.grpo.symptoms) {
          std::map<std::string, double> m;
          for (auto it = rec.begin(); it != rec.end(); ++it)
            if (it.value().is_number()) m[it.key()] = it.value().get<double>();
          for (const auto& s : symptoms.observe(step, m)) {
            log::warn("symptom at step ", s.step, ": ", s.message, "\n  remedy: ", s.remedy);
            run.log(step, {{"symptom", s.id}, {"message", s.message}, {"remedy", s.remedy}});
          }
        }
        if (cfg.grpo.ref_sync_every > 0 && step % cfg.grpo.ref_sync_every == 0)
          reference.sync_from_policy(cfg.grpo.ref_sync_alpha);
        save_due = save_due || run.due(step, cfg.train.save_every) || step == total_steps;
      }
    }
    // Evaluation and checkpoints at round boundaries (a checkpoint never holds half a round).
    std::optional<double> metric;
    const bool eval_due = step == total_steps || (cfg.eval.every > 0 && step - last_eval >= cfg.eval.every);
    if (eval_due) {
      metric = evaluate(step);
      last_eval = step;
    }
    if (save_due) save(metric);
  }
  run.finish();
  export_policy(policy, cfg.lora, std::filesystem::path(cfg.output_dir) / "final");
  log::info("done: ", (std::filesystem::path(cfg.output_dir) / "final").string(),
            policy.use_lora() ? " (PEFT adapter)" : " (Hugging Face model)");
}

}  // namespace tune::algo

// GRPO: rounds of rollouts -> rewards -> group advantages -> `mu` x `mini_batches` optimizer steps
// of the shared policy loss. Everything a step needs from the round (old and reference log-probs,
// advantages, masks) is computed once per round; the step itself reads as the loss.
#include "tune/algo/model_source.h"
#include "tune/algo/grpo.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>

#include "algo/grpo_round.h"
#include "algo/ptx.h"
#include "algo/rl_common.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/model_reward.h"
#include "tune/algo/policy.h"
#include "tune/algo/policy_loss.h"
#include "tune/algo/reference.h"
#include "tune/algo/rollout_scoring.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/model/config.h"
#include "tune/ops/token_logprob.h"
#include "tune/report/symptoms.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"
#include "tune/rollout/sampling.h"
#include "tune/text/dataset.h"
#include "tune/train/communicator.h"

namespace tune::algo {
namespace {

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

}  // namespace

void run_grpo(const GrpoConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  RlPrompts prompts =
      load_rl_prompts(cfg.model, cfg.data, cfg.reward, cfg.rollout, cfg.eval.max_prompts, " (docs/rewards.md)");
  const auto& train_prompts = prompts.train;
  const auto& eval_prompts = prompts.eval;
  const text::Tokenizer* tokenizer = prompts.tokenizer.get();

  const int64_t steps_per_round = cfg.grpo.mu * cfg.grpo.mini_batches;
  const int64_t rounds_per_epoch =
      std::max<int64_t>(1, static_cast<int64_t>(train_prompts.size()) / cfg.grpo.prompts_per_round);
  const int64_t total_steps =
      cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * rounds_per_epoch * steps_per_round;
  const int64_t rows_per_round = cfg.grpo.prompts_per_round * cfg.grpo.group_size;
  if (rows_per_round % cfg.grpo.mini_batches != 0)
    usage_fail("config error: grpo.mini_batches (", cfg.grpo.mini_batches, ") must divide prompts_per_round x group_size (",
               rows_per_round, ")");
  // Data parallelism: each rank rolls out its block of the round's prompts (groups stay whole on one
  // rank, so group advantages need nothing from the others) and trains on its rows.
  train::Communicator& world = train::world();
  const int64_t ranks = world.world_size();
  if (ranks > 1) {
    if (cfg.grpo.prompts_per_round % ranks != 0)
      usage_fail("config error: grpo.prompts_per_round (", cfg.grpo.prompts_per_round, ") must be a multiple of the ",
                 ranks, " data-parallel ranks");
    if ((rows_per_round / ranks) % cfg.grpo.mini_batches != 0)
      usage_fail("config error: grpo.mini_batches (", cfg.grpo.mini_batches, ") must divide each rank's rows per round (",
                 rows_per_round / ranks, " on ", ranks, " ranks)");
    if (cfg.grpo.scale == "batch")
      usage_fail("config error: grpo.scale: batch is not supported under data parallelism yet (the batch std would be "
                 "each rank's); use group or none");
    if (!cfg.ptx.path.empty())
      usage_fail("config error: ptx is not supported under data parallelism yet (its NLL is normalised by this rank's "
                 "tokens)");
  }
  const int64_t rows_per_rank = rows_per_round / ranks;
  log::info("grpo: ", train_prompts.size(), " train / ", eval_prompts.size(), " eval prompts; rounds of ",
            cfg.grpo.prompts_per_round, " prompts x G ", cfg.grpo.group_size, ", ", steps_per_round,
            " optimizer steps each (mu ", cfg.grpo.mu, " x ", cfg.grpo.mini_batches, " mini-batches); ", total_steps,
            " steps; loss ", cfg.grpo.loss, ", beta ", cfg.grpo.beta, cfg.grpo.dynamic_sampling ? ", dynamic sampling" : "");
  std::optional<PtxMix> ptx;  // loaded before the dry run returns, so a dry run checks ptx.path too
  if (!cfg.ptx.path.empty()) ptx.emplace(cfg.model, cfg.data, cfg.ptx, rows_per_round / cfg.grpo.mini_batches, cfg.seed);
  if (dry_run) return report_dry_run(cfg.model, cfg.method);

  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  const auto device = model.options().device();
  if (cfg.grpo.ref_sync_every > 0 && policy.use_lora())
    usage_fail("config error: grpo.ref_sync_every needs method: full (under LoRA the reference is the base model)");
  ReferenceModel reference(policy, model_dir(cfg.model).string(), cfg.grpo.beta > 0 ? ReferenceMode::frozen : ReferenceMode::none);
  log::info("reference: ", reference.describe());
  reward::Composite rewards = build_reward(cfg.reward);
  rollout::RolloutEngine engine(model, rollout::engine_options(*tokenizer, cfg.engine, &policy.lora));
  // Rank 0 draws what one process draws; the others their own streams.
  torch::Generator generator =
      rollout::make_generator(device, static_cast<uint64_t>(cfg.seed) + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(world.rank()));
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
  Run run(cfg.output_dir, config::to_json(cfg), files, cfg.train, total_steps, ckpt_policy, cfg.log);
  train::TrainingState state;
  state.parameters = opt.parameters;
  state.optimizer = opt.optimizer.get();
  state.stepper = opt.stepper.get();
  int64_t step = run.resume(cfg.resume, state);
  if (state.data_position.is_object() && state.data_position.contains("prompts")) {
    order.restore(state.data_position.at("prompts"));
    restore_rollout_streams(generator, state.data_position, world);
    rewards.restore(state.data_position.value("reward", Json::object()));
  }
  auto save = [&](std::optional<double> metric) {
    const auto streams = train::all_gather_text(world, generator_hex(generator));  // every rank's, for an exact resume
    state.data_position = {{"prompts", order.state()}, {"rollout_rng", streams.front()},
                           {"rollout_rng_ranks", streams}, {"reward", rewards.state()}};
    run.save(state, step, metric);
  };

  // The samples of a few completions per round: practitioners judge RL by bad cases.
  const std::filesystem::path samples_path = std::filesystem::path(cfg.output_dir) / "samples.jsonl";
  auto write_samples = [&](const std::string& kind, int64_t at, const std::vector<RoundSample>& samples, int64_t n) {
    if (world.is_main()) algo::write_samples(samples_path, kind, at, samples, n);  // rank 0's share
  };

  // The symptom watcher (the table of tune/report/symptoms.h, which tune doctor runs too).
  report::SymptomWatcher symptoms("grpo");
  auto report_symptoms = [&](const std::vector<report::Symptom>& found) {
    if (!world.is_main()) return;  // the same global figures on every rank: one report
    for (const auto& s : found) {
      log::warn("symptom at step ", s.step, ": ", s.message, "\n  remedy: ", s.remedy);
      run.log(s.step, {{"symptom", s.id}, {"message", s.message}, {"remedy", s.remedy}});
    }
  };

  // Held-out pass@1: greedy and one sample per prompt at the rollout temperature.
  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (eval_prompts.empty()) return std::nullopt;
    std::vector<RoundSample> shown;
    Json rec = evaluate_pass_at_1(engine, eval_prompts, rewards, cfg.eval, cfg.rollout, generator, &shown);
    if (cfg.eval.greedy) write_samples("eval", at, shown, 4);
    log::info("eval at step ", at, ": pass@1 greedy ",
              rec.contains("eval_pass@1_greedy") ? fixed(100 * rec["eval_pass@1_greedy"].get<double>(), 1) + "%" : "-",
              ", sampled ",
              rec.contains("eval_pass@1_sampled") ? fixed(100 * rec["eval_pass@1_sampled"].get<double>(), 1) + "%" : "-",
              " of ", eval_prompts.size());
    const double metric = rec["eval_pass@1"].get<double>();
    run.log(at, rec);
    if (cfg.grpo.symptoms) report_symptoms(symptoms.observe_eval(at, {{"eval_pass@1", metric}}));
    return metric;
  };

  // Trainer-side log-probs of round rows, no gradients, the policy as it is now.
  const int64_t micro = cfg.train.batch_size;
  auto score_rows = [&](RoundRows& rows, bool need_old) {
    round_logprobs(model, reference, rows, micro, cfg.rollout.temperature, need_old);
  };

  RoundOptions round_opts;
  round_opts.group_size = cfg.grpo.group_size;
  round_opts.baseline = cfg.grpo.baseline;
  round_opts.scale = cfg.grpo.scale;
  round_opts.std_eps = cfg.grpo.std_eps;
  round_opts.mask_truncated = cfg.grpo.mask_truncated;
  round_opts.drop_zero_variance = cfg.grpo.dynamic_sampling;

  int64_t last_eval = step;
  if (cfg.eval.at_start && step == 0) evaluate(0);
  model.train();
  const auto started = RlClock::now();
  int64_t rollout_tokens_total = 0, rounds_without_signal = 0;
  while (step < total_steps) {
    // --- One round: rollouts, rewards, advantages (more rollouts under dynamic sampling).
    double t_generate = 0, t_score = 0;
    RoundRows rows;
    std::vector<double> judged_rewards;
    std::map<std::string, std::pair<double, int64_t>> term_sums;
    int64_t groups = 0, flat_groups = 0, completion_tokens = 0, truncated = 0, nulls = 0, max_len = 0, samples_n = 0;
    const int64_t attempts = cfg.grpo.dynamic_sampling ? 1 + cfg.grpo.max_sampling_rounds : 1;
    for (int64_t attempt = 0; attempt < attempts; ++attempt) {
      // Prompts each rank still needs (all of them draw the same ones from the shared order, and
      // each takes its own block): its share at first, then what fills its rows (dynamic sampling).
      const int64_t need = attempt == 0 ? cfg.grpo.prompts_per_round / ranks
                                        : (std::max<int64_t>(0, rows_per_rank - rows.size()) + cfg.grpo.group_size - 1) /
                                              cfg.grpo.group_size;
      const std::vector<int64_t> needs = gather_counts(world, need);
      const int64_t total_need = std::accumulate(needs.begin(), needs.end(), int64_t{0});
      if (total_need == 0) break;
      const int64_t mine_from = std::accumulate(needs.begin(), needs.begin() + world.rank(), int64_t{0});
      std::vector<int64_t> picked;
      std::vector<rollout::RolloutPrompt> prompts;
      for (int64_t k = 0; k < total_need; ++k) {
        const int64_t p = order.next();
        if (k < mine_from || k >= mine_from + need) continue;
        picked.push_back(p);
        prompts.push_back(train_prompts[static_cast<size_t>(p)]);
      }
      if (picked.empty()) continue;
      auto t0 = RlClock::now();
      auto r = engine.rollout(rollout::prompt_ids(prompts), cfg.grpo.group_size, cfg.rollout, generator);
      t_generate += seconds_since(t0);
      t0 = RlClock::now();
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
      add_term_details(scores, term_sums);
      ScoredRound scored = score_round(r, rs, scores, picked, round_opts);
      groups += scored.groups;
      flat_groups += scored.zero_variance_groups;
      rows.append(scored.rows);
    }
    if (rows.size() > rows_per_rank) rows = rows.select([&] {
        std::vector<int64_t> keep(static_cast<size_t>(rows_per_rank));
        for (int64_t i = 0; i < rows_per_rank; ++i) keep[static_cast<size_t>(i)] = i;
        return keep;
      }());
    // The round's figures over every rank (the sums, then the same means everywhere).
    RoundTally tally{samples_n, nulls, completion_tokens, truncated, max_len, groups, flat_groups, rows.size(),
                     judged_rewards, term_sums};
    tally = tally.over(world);
    std::tie(samples_n, nulls, completion_tokens, truncated, max_len, groups, flat_groups) =
        std::tuple{tally.samples, tally.nulls, tally.completion_tokens, tally.truncated, tally.max_length, tally.groups,
                   tally.flat_groups};
    term_sums = tally.terms;
    rollout_tokens_total += completion_tokens;
    // A step needs rows on every rank: a rank left with fewer than one per mini-batch skips the round
    // for all of them (on one process: no row at all).
    if (tally.fewest_rows < cfg.grpo.mini_batches) {
      // Every group was without signal even after the extra rollouts: nothing to learn from, so no
      // step is made; too many such rounds in a row stop the run (the prompts do not suit the model).
      if (++rounds_without_signal >= cfg.train.max_consecutive_skips)
        fail("grpo: ", rounds_without_signal, " rounds in a row had no group with reward variance (", groups,
             " groups in the last, ", cfg.grpo.max_sampling_rounds, " extra rollouts each): the model solves every ",
             "prompt always or never; run `tune probe` on the model and prompts (RL needs prompts solved sometimes), ",
             "or train without grpo.dynamic_sampling");
      log::warn("grpo: no group with reward variance in this round (", groups, " groups",
                ranks > 1 ? str("; a rank kept ", tally.fewest_rows, " rows, fewer than its ", cfg.grpo.mini_batches,
                                " mini-batches") : std::string(),
                "): no step made (", rounds_without_signal, " in a row)");
      continue;
    }
    rounds_without_signal = 0;
    auto t0 = RlClock::now();
    score_rows(rows, cfg.grpo.mu > 1);
    const double t_reference = seconds_since(t0);
    write_samples("train", step + 1, rows.samples, cfg.grpo.log_samples);

    // Round metrics, logged with each of its steps.
    auto [reward_mean, reward_std] = tally.reward_mean_std();
    Json round = {{"reward", reward_mean},
                  {"reward_std", reward_std},
                  {"completion_length", samples_n ? static_cast<double>(completion_tokens) / samples_n : 0.0},
                  {"completion_length_max", max_len},
                  {"truncated", samples_n ? static_cast<double>(truncated) / samples_n : 0.0},
                  {"reward_null", nulls},
                  {"zero_variance_groups", groups ? static_cast<double>(flat_groups) / groups : 0.0},
                  {"groups_sampled", groups},
                  {"rows_trained", tally.rows},
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
        const auto t_train0 = RlClock::now();
        const int64_t base = mb * per_step;
        std::vector<double> counts;
        std::vector<std::pair<int64_t, int64_t>> micro_rows;
        for (int64_t first = base; first < base + per_step; first += micro) {
          const int64_t n = std::min(micro, base + per_step - first);
          micro_rows.emplace_back(first, n);
          counts.push_back(policy_loss_count(loss_cfg, rows.mask.narrow(0, first, n)));
        }
        double gap_max = 0, ratio_min = 1, ratio_max = 1;
        const double policy_count = std::accumulate(counts.begin(), counts.end(), 0.0);
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
          if (ptx)
            ptx->add_to(res, i + 1 == static_cast<int>(micro_rows.size()), model, opt.stepper->steps_done(), policy_count,
                        device);
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
          report_symptoms(symptoms.observe(step, m));
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

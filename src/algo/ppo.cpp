// PPO: rounds of rollouts -> scores -> per-token rewards (-kl_coef * k1 at every token, the score at
// the last) -> the critic's values -> GAE -> whitening -> `ppo_epochs` passes of mini-batch steps of
// the clipped policy loss and the clipped value loss, old log-probs and old values kept. The policy
// and the critic are separate models with separate optimizers (and learning rates); one checkpoint
// holds both. Everything a step needs from the round is computed once per round.
#include "tune/algo/model_source.h"
#include "tune/algo/ppo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "algo/grpo_round.h"
#include "algo/ppo_critic.h"
#include "algo/ppo_shared_base.h"
#include "algo/ptx.h"
#include "tune/train/communicator.h"
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
#include "tune/algo/value_loss.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/model/config.h"
#include "tune/ops/advantages.h"
#include "tune/ops/masked.h"
#include "tune/ops/returns.h"
#include "tune/ops/token_logprob.h"
#include "tune/report/symptoms.h"
#include "tune/reward/normalize.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"
#include "tune/rollout/sampling.h"
#include "tune/text/dataset.h"

namespace tune::algo {
namespace stdfs = std::filesystem;
namespace {

// The policy's and the critic's AdamW states as the one optimizer a checkpoint holds: optimizer.pt
// gets a "policy" and a "critic" archive. It holds one of the policy's parameters so that loading
// maps the states onto the policy's device (the critic lives on the same one). Never stepped.
class OptimizerPair : public torch::optim::Optimizer {
 public:
  OptimizerPair(torch::optim::Optimizer& policy, torch::optim::Optimizer* critic)
      : torch::optim::Optimizer(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(
                                    std::vector<torch::Tensor>{train::optimizer_parameters(policy).front()})},
                                std::make_unique<torch::optim::AdamWOptions>()),
        policy_(policy),
        critic_(critic) {}
  torch::Tensor step(LossClosure) override { fail("internal: the checkpoint's optimizer pair is not stepped"); }
  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive p(archive.compilation_unit());  // as nn::Module::save nests its children
    policy_.save(p);
    archive.write("policy", p);
    if (critic_) {
      torch::serialize::OutputArchive c(archive.compilation_unit());
      critic_->save(c);
      archive.write("critic", c);
    }
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive p;
    archive.read("policy", p);
    policy_.load(p);
    if (critic_) {
      torch::serialize::InputArchive c;
      TUNE_CHECK(archive.try_read("critic", c), "checkpoint: no critic optimizer state (a run without a critic?)");
      critic_->load(c);
    }
  }

 private:
  torch::optim::Optimizer& policy_;
  torch::optim::Optimizer* critic_;
};

PolicyLossConfig loss_config(const PpoConfig& cfg) {
  PolicyLossConfig c;
  c.objective = PolicyObjective::clip;
  c.ratio_level = RatioLevel::token;
  c.aggregation = LossAggregation::token_mean;  // PPO's masked mean over the mini-batch's tokens
  c.clip_low = cfg.ppo.clip_low;
  c.clip_high = cfg.ppo.clip_high;
  c.dual_clip = cfg.ppo.dual_clip;
  c.log_ratio_clamp = cfg.ppo.log_ratio_clamp;
  c.beta = 0;  // the KL is in the reward
  c.entropy_coef = cfg.ppo.entropy_coef;
  c.max_completion_length = cfg.rollout.max_new_tokens;
  return c;
}

// Memory of a model's weights (+ gradients and AdamW's two float32 moments when fully trained).
std::string role_memory(const model::ModelConfig& mc, torch::ScalarType dtype, bool trained_full) {
  const double p = static_cast<double>(mc.num_parameters());
  const double weights = p * static_cast<double>(c10::elementSize(dtype));
  if (!trained_full) return human_bytes(static_cast<uint64_t>(weights));
  const double total = 2 * weights + 8 * p;
  return str(human_bytes(static_cast<uint64_t>(total)), " (weights ", human_bytes(static_cast<uint64_t>(weights)),
             ", gradients ", human_bytes(static_cast<uint64_t>(weights)), ", AdamW ",
             human_bytes(static_cast<uint64_t>(8 * p)), ")");
}

// The model config of a `tune rm` output (full layout, or a LoRA adapter's base); nullopt when absent.
std::optional<model::ModelConfig> reward_model_config(const std::string& path, const std::string& base) {
  const stdfs::path dir = path;
  if (stdfs::exists(dir / "adapter_config.json")) {
    std::string b = base;
    if (b.empty()) b = read_json_file(dir / "adapter_config.json").value("base_model_name_or_path", std::string());
    if (b.empty() || !stdfs::exists(stdfs::path(b) / "config.json")) return std::nullopt;
    return model::ModelConfig::load(b);
  }
  if (!stdfs::exists(dir / "config.json")) return std::nullopt;
  return model::ModelConfig::load(dir);
}

// The dry-run plan: every role, what it is and the memory it holds.
void report_roles(const PpoConfig& cfg, bool use_critic, const SharedBasePlan& shared) {
  report_dry_run(cfg.model, cfg.method);
  const auto device = resolve_device(cfg.model.device);
  const auto dtype = resolve_dtype(cfg.model.dtype, device);
  const auto mc = model::ModelConfig::load(model_dir(cfg.model));
  if (shared.share)
    log::info("dry run: shared base: one copy of ", model_dir(cfg.model).string(), " (", role_memory(mc, dtype, false),
              ") for ", join(shared.roles, ", "), "; each role adds only its adapters (the lines below count the base once each)");
  else if (cfg.method == "lora")
    log::info("dry run: shared base: no, ", shared.why_not);
  const bool lora = cfg.method == "lora";
  log::info("dry run: role policy (", cfg.method, "): ", role_memory(mc, dtype, !lora), lora ? " + adapters and their AdamW" : "");
  log::info("dry run: role reference: ", lora ? "the policy with its adapters disabled, no extra memory"
                                              : str("a frozen copy of ", cfg.model.path, ": ", role_memory(mc, dtype, false)));
  if (use_critic) {
    std::optional<model::ModelConfig> cc;
    std::string what;
    if (cfg.critic.init == "policy") {
      cc = mc;
      what = str("from the policy's weights (", cfg.model.path, ")");
    } else {
      const std::string path = critic_reward_model_path(cfg);
      what = str("from the reward model ", path.empty() ? std::string("(none named: set critic.path)") : path);
      if (!path.empty()) cc = reward_model_config(path, "");
    }
    const bool full = cfg.critic.method == "full" &&
                      !(cfg.critic.init == "reward_model" &&
                        stdfs::exists(stdfs::path(critic_reward_model_path(cfg)) / "adapter_config.json"));
    log::info("dry run: role critic ", what, " (", full ? "full" : "lora", ", lr ", cfg.critic.lr, "): ",
              cc ? role_memory(*cc, dtype, full) + (full ? "" : " + adapters and their AdamW")
                 : std::string("not found yet (checked when the run starts)"));
  } else {
    log::info("dry run: role critic: none (ppo.estimator ", cfg.ppo.estimator, ")");
  }
  for (const auto& term : cfg.reward.terms) {
    if (term.kind != "model") continue;
    const auto rd = resolve_device(term.model.device);
    auto rc = reward_model_config(term.model.path, term.model.base);
    log::info("dry run: role reward model '", term.term_name(), "' ", term.model.path, ": ",
              rc ? role_memory(*rc, resolve_dtype(term.model.dtype, rd), false)
                 : std::string("not found yet (checked when the run starts)"));
  }
}

// A masked tensor's valid entries' max (0 when none).
double masked_max(const torch::Tensor& x, const torch::Tensor& mask) {
  auto on = mask.to(torch::kBool);
  if (!on.any().item<bool>()) return 0.0;
  return x.masked_select(on).max().item<double>();
}

}  // namespace

void run_ppo(const PpoConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  RlPrompts prompts = load_rl_prompts(cfg.model, cfg.data, cfg.reward, cfg.rollout, cfg.eval.max_prompts,
                                            ", usually a reward model (kind: model)");
  const auto& train_prompts = prompts.train;
  const auto& eval_prompts = prompts.eval;
  const text::Tokenizer* tokenizer = prompts.tokenizer.get();
  const std::string& est = cfg.ppo.estimator;
  const bool use_critic = est == "gae";
  if ((est == "reinforce_baseline" || est == "rloo") && cfg.ppo.group_size < 2)
    usage_fail("config error: ppo.group_size must be at least 2 for ppo.estimator ", est,
               " (its baseline is the other completions of the prompt)");
  if (!use_critic && cfg.critic.warmup_steps > 0)
    usage_fail("config error: critic.warmup_steps needs a critic (ppo.estimator gae), not ", est);
  auto kl_ctl = make_kl_controller(cfg.kl);  // validates the kl section


  const int64_t G = cfg.ppo.group_size;
  const int64_t rows_per_round = cfg.ppo.prompts_per_round * G;
  if (rows_per_round % cfg.ppo.mini_batch_size != 0)
    usage_fail("config error: ppo.mini_batch_size (", cfg.ppo.mini_batch_size,
               ") must divide ppo.prompts_per_round x ppo.group_size (", rows_per_round, ")");
  const int64_t mini_batches = rows_per_round / cfg.ppo.mini_batch_size;
  // Data parallelism: each rank rolls out its block of the round's prompts and takes its share of
  // every mini-batch; the round's statistics (whitening, the KL controller's input, reward scaling,
  // the metrics) are over every rank's rows.
  train::Communicator& world = train::world();
  const int64_t ranks = world.world_size();
  if (ranks > 1) {
    if (cfg.ppo.prompts_per_round % ranks != 0 || cfg.ppo.mini_batch_size % ranks != 0)
      usage_fail("config error: ppo.prompts_per_round (", cfg.ppo.prompts_per_round, ") and ppo.mini_batch_size (",
                 cfg.ppo.mini_batch_size, ") must be multiples of the ", ranks, " data-parallel ranks");
    if (est == "reinforce_pp")
      usage_fail("config error: ppo.estimator: reinforce_pp is not supported under data parallelism yet (its return "
                 "whitening would be each rank's); use gae, rloo or reinforce_baseline");
    if (!cfg.ptx.path.empty())
      usage_fail("config error: ptx is not supported under data parallelism yet (its NLL is normalised by this rank's "
                 "tokens)");
  }
  if (cfg.train.zero_stage != 0)
    usage_fail("config error: train.zero_stage: 1 is not supported by tune ppo yet (two optimizers share its "
               "checkpoint); use it with sft, rm, dpo or grpo");
  const int64_t mini_batch_rows = cfg.ppo.mini_batch_size / ranks;  // this rank's share of a mini-batch
  const int64_t steps_per_round = cfg.ppo.ppo_epochs * mini_batches;
  const int64_t rounds_per_epoch =
      std::max<int64_t>(1, static_cast<int64_t>(train_prompts.size()) / cfg.ppo.prompts_per_round);
  const int64_t total_steps =
      cfg.train.max_steps > 0 ? cfg.train.max_steps : cfg.train.epochs * rounds_per_epoch * steps_per_round;
  const int64_t warmup = use_critic ? cfg.critic.warmup_steps : 0;
  if (warmup >= total_steps)
    usage_fail("config error: critic.warmup_steps (", warmup, ") must be below the run's ", total_steps,
               " steps (the policy would never train)");
  log::info("ppo: ", train_prompts.size(), " train / ", eval_prompts.size(), " eval prompts; rounds of ",
            cfg.ppo.prompts_per_round, " prompts x ", G, ", ", steps_per_round, " optimizer steps each (", cfg.ppo.ppo_epochs,
            " epochs x ", mini_batches, " mini-batches of ", cfg.ppo.mini_batch_size, "); ", total_steps, " steps; estimator ",
            est, "; KL ", cfg.kl.kind, " from ", cfg.kl.init,
            use_critic ? str("; critic lr ", cfg.critic.lr, ", warm-up ", warmup, " steps") : std::string());
  std::optional<PtxMix> ptx;  // loaded before the dry run returns, so a dry run checks ptx.path too
  if (!cfg.ptx.path.empty()) ptx.emplace(cfg.model, cfg.data, cfg.ptx, cfg.ppo.mini_batch_size, cfg.seed);
  const SharedBasePlan shared_plan = plan_shared_base(cfg, use_critic);
  if (dry_run) return report_roles(cfg, use_critic, shared_plan);

  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  const auto device = model.options().device();
  const bool kl_off = cfg.kl.kind == "fixed" && cfg.kl.init == 0;
  // One base for every LoRA role: the policy's adapters leave the slots, the critic's and the reward
  // models' are loaded onto the same model, then one switch per projection runs the active role's.
  std::optional<SharedBase> shared;
  if (shared_plan.share) {
    shared.emplace();
    shared->model = policy.model;
    shared->roles.add("policy", policy.lora);
  }
  SharedBase* on_shared = shared ? &*shared : nullptr;
  ReferenceModel reference(policy, model_dir(cfg.model).string(), kl_off ? ReferenceMode::none : ReferenceMode::frozen);
  log::info("reference: ", reference.describe());
  reward::Composite rewards = build_reward(cfg.reward, "reward", on_shared);
  std::optional<Critic> critic;
  if (use_critic)
    critic = load_critic(cfg, device, resolve_dtype(cfg.model.dtype, device), pad_id_of(*tokenizer), on_shared);
  if (shared) {
    shared->roles.install();
    log::info("shared base: one copy of ", model_dir(cfg.model).string(), " for ", join(shared_plan.roles, ", "),
              " (LoRA adapters per role)");
  } else if (cfg.method == "lora") {
    log::info("shared base: no, ", shared_plan.why_not);
  }
  rollout::RolloutEngine engine(model, rollout::engine_options(*tokenizer, cfg.engine, &policy.lora));
  // Rank 0 draws what one process draws; the others their own streams.
  torch::Generator generator =
      rollout::make_generator(device, static_cast<uint64_t>(cfg.seed) + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(world.rank()));
  PromptOrder order(static_cast<int64_t>(train_prompts.size()), static_cast<uint64_t>(cfg.data.seed));
  const PolicyLossConfig loss_cfg = loss_config(cfg);
  const ValueLossConfig value_cfg{cfg.ppo.value_clip, cfg.ppo.vf_coef};

  // The policy's optimizer counts only its own steps (none during the critic's warm-up); the
  // critic's, when there is one, steps every mini-batch and is the run's step clock.
  Optimization opt(policy.trainable, cfg.optim, cfg.train, total_steps - warmup);
  std::unique_ptr<Optimization> critic_opt;
  if (critic) {
    OptimSection co = cfg.optim;
    co.lr = cfg.critic.lr;
    co.weight_decay = cfg.critic.weight_decay;
    LoopSection cl = cfg.train;
    cl.max_grad_norm = cfg.critic.max_grad_norm;
    critic_opt = std::make_unique<Optimization>(critic->trainable, co, cl, total_steps);
  }
  train::Stepper& clock = critic_opt ? *critic_opt->stepper : *opt.stepper;
  OptimizerPair optimizers(*opt.optimizer, critic_opt ? critic_opt->optimizer.get() : nullptr);

  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!eval_prompts.empty()) {
    ckpt_policy.metric_name = "eval_pass@1";
    ckpt_policy.greater_is_better = true;
  }
  std::vector<train::ManifestFile> files = manifest_files(cfg.model, cfg.data);
  Run run(cfg.output_dir, config::to_json(cfg), files, cfg.train, total_steps, ckpt_policy, cfg.log);
  train::TrainingState state;
  state.parameters = policy.trainable;
  if (critic) state.parameters.insert(state.parameters.end(), critic->trainable.begin(), critic->trainable.end());
  state.optimizer = &optimizers;
  state.stepper = &clock;
  reward::Normalizer return_stats = reward::Normalizer::running();  // ppo.reward_scaling's statistics
  int64_t step = run.resume(cfg.resume, state);
  if (state.data_position.is_object() && state.data_position.contains("prompts")) {
    const Json& dp = state.data_position;
    order.restore(dp.at("prompts"));
    restore_rollout_streams(generator, dp, world);
    rewards.restore(dp.value("reward", Json::object()));
    kl_ctl->load_state(dp.at("kl"));
    if (dp.contains("return_stats")) return_stats.restore(dp.at("return_stats"));
    if (critic_opt) opt.stepper->load_state(dp.at("policy_stepper"));
  }
  auto save = [&](std::optional<double> metric) {
    const auto streams = train::all_gather_text(world, generator_hex(generator));  // every rank's, for an exact resume
    state.data_position = {{"prompts", order.state()},
                           {"rollout_rng", streams.front()},
                           {"rollout_rng_ranks", streams},
                           {"reward", rewards.state()},
                           {"kl", kl_ctl->state()},
                           {"return_stats", return_stats.state()},
                           {"policy_stepper", opt.stepper->state()}};
    run.save(state, step, metric);
  };

  const stdfs::path samples_path = stdfs::path(cfg.output_dir) / "samples.jsonl";
  report::SymptomWatcher symptoms("ppo");
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
    if (cfg.eval.greedy && world.is_main()) write_samples(samples_path, "eval", at, shown, 4);
    log::info("eval at step ", at, ": pass@1 greedy ",
              rec.contains("eval_pass@1_greedy") ? fixed(100 * rec["eval_pass@1_greedy"].get<double>(), 1) + "%" : "-",
              ", sampled ",
              rec.contains("eval_pass@1_sampled") ? fixed(100 * rec["eval_pass@1_sampled"].get<double>(), 1) + "%" : "-",
              " of ", eval_prompts.size());
    const double metric = rec["eval_pass@1"].get<double>();
    run.log(at, rec);
    if (cfg.ppo.symptoms) report_symptoms(symptoms.observe_eval(at, {{"eval_pass@1", metric}}));
    return metric;
  };

  const int64_t micro = cfg.train.batch_size;
  RoundOptions round_opts;  // rows only: PPO's advantages come from the token rewards below
  round_opts.group_size = G;
  round_opts.baseline = "mean";
  round_opts.scale = "none";
  round_opts.mask_truncated = cfg.ppo.mask_truncated;

  int64_t last_eval = step;
  if (cfg.eval.at_start && step == 0) evaluate(0);
  model.train();
  const auto started = RlClock::now();
  int64_t rollout_tokens_total = 0, empty_rounds = 0;
  while (step < total_steps) {
    // --- Rollouts and scores.
    std::vector<int64_t> picked;
    std::vector<rollout::RolloutPrompt> prompts;
    const int64_t share = cfg.ppo.prompts_per_round / ranks;  // every rank draws them all, keeps its block
    for (int64_t k = 0; k < cfg.ppo.prompts_per_round; ++k) {
      const int64_t p = order.next();
      if (k / share != world.rank()) continue;
      picked.push_back(p);
      prompts.push_back(train_prompts[static_cast<size_t>(p)]);
    }
    auto t0 = RlClock::now();
    auto r = engine.rollout(rollout::prompt_ids(prompts), G, cfg.rollout, generator);
    const double t_generate = seconds_since(t0);
    t0 = RlClock::now();
    std::vector<reward::Sample> rs;
    for (const auto& info : r.samples) rs.push_back(reward_sample(prompts[static_cast<size_t>(info.prompt_index)], info));
    reward::Scores scores = rewards.score_terms(rs);
    const double t_score = seconds_since(t0);
    RoundRows rows = score_round(r, rs, scores, picked, round_opts).rows;
    const int64_t N = rows.size();
    const bool empty_here = N == 0 || rows.mask.sum().item<double>() == 0;
    if (train::all_reduce_sum(world, {empty_here ? 1.0 : 0.0})[0] > 0) {  // on any rank: no step anywhere
      if (++empty_rounds >= cfg.train.max_consecutive_skips)
        fail("ppo: ", empty_rounds, " rounds in a row had no completion to train on (every reward null, or every ",
             "completion masked): check the reward (tune score / samples.jsonl) and ppo.mask_truncated");
      log::warn("ppo: no completion to train on in this round: no step made (", empty_rounds, " in a row)");
      continue;
    }
    empty_rounds = 0;

    // Host statistics of the round (every sample rolled out).
    std::vector<double> judged;
    std::vector<float> score_values(static_cast<size_t>(N), 0.f);
    std::map<std::string, std::pair<double, int64_t>> term_sums;
    int64_t completion_tokens = 0, truncated = 0, nulls = 0, max_len = 0;
    for (int64_t i = 0; i < N; ++i) {
      const auto& s = scores.total[static_cast<size_t>(i)];
      if (s) {
        judged.push_back(*s);
        score_values[static_cast<size_t>(i)] = static_cast<float>(*s);
      } else {
        ++nulls;
      }
      for (const auto& t : scores.terms)
        if (t.values[static_cast<size_t>(i)]) {
          term_sums[t.name].first += *t.values[static_cast<size_t>(i)];
          term_sums[t.name].second += 1;
        }
      completion_tokens += r.samples[static_cast<size_t>(i)].completion_length;
      max_len = std::max(max_len, r.samples[static_cast<size_t>(i)].completion_length);
      truncated += r.samples[static_cast<size_t>(i)].truncated;
    }
    add_term_details(scores, term_sums);
    // The round's sampling figures over every rank.
    const RoundTally tally =
        RoundTally{N, nulls, completion_tokens, truncated, max_len, 0, 0, N, judged, term_sums}.over(world);
    completion_tokens = tally.completion_tokens;
    rollout_tokens_total += completion_tokens;

    // --- Old log-probs, reference log-probs, old values: the round's fixed quantities.
    t0 = RlClock::now();
    round_logprobs(model, reference, rows, micro, cfg.rollout.temperature, /*need_old=*/true);
    const double t_reference = seconds_since(t0);
    const auto fopts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const int64_t T = rows.input_ids.size(1);
    torch::Tensor old_values = torch::zeros({N, T}, fopts);
    t0 = RlClock::now();
    if (critic) {
      torch::NoGradGuard no_grad;
      critic->model->eval();
      for (int64_t first = 0; first < N; first += micro) {
        const int64_t n = std::min(micro, N - first);
        data::Batch b = rows_batch(rows, first, n);
        old_values.narrow(0, first, n).narrow(1, 0, b.input_ids.size(1)).copy_(critic_values(*critic, b));
      }
      critic->model->train();
    }
    const double t_critic = seconds_since(t0);
    const torch::Tensor& mask = rows.mask;  // [N, T] float: completion tokens of judged rows
    old_values = old_values * mask;
    // The sampler's log-probs against the trainer's before any update (the same model: float rounding).
    const double gap_max = masked_max((rows.old_logp - rows.sampler_logp).abs(), rows.labels.ne(ops::kIgnoreIndex));

    // --- Per-token rewards: -kl_coef * k1 at every token, the score at the last.
    const double kl_coef = kl_ctl->value();
    torch::Tensor ref_logp = rows.ref_logp.defined() ? rows.ref_logp : rows.old_logp;
    torch::Tensor kl_tok = (rows.old_logp - ref_logp) * mask;  // k1 per token
    std::vector<int64_t> judged_flags(static_cast<size_t>(N), 0);
    for (int64_t i = 0; i < N; ++i) judged_flags[static_cast<size_t>(i)] = scores.total[static_cast<size_t>(i)].has_value();
    torch::Tensor valid = torch::tensor(judged_flags).to(torch::kBool);  // [N] host
    torch::Tensor score = torch::tensor(score_values);  // [N] host
    if (est == "reinforce_baseline" || est == "rloo") {
      ops::GroupAdvantageOptions go;
      go.group_size = G;
      go.baseline = est == "rloo" ? ops::GroupBaseline::leave_one_out : ops::GroupBaseline::mean;
      go.scale = ops::RewardScale::none;
      score = ops::group_advantages(score, go, valid).to(torch::kFloat32);
    }
    score = score.to(device);
    ops::TokenRewardOptions tro;
    tro.kl_coef = kl_coef;
    tro.kl_estimator = ops::KlKind::k1;
    tro.missing_eos_penalty = cfg.ppo.missing_eos_penalty;
    tro.score_clip = cfg.ppo.score_clip;
    torch::Tensor ended = r.truncated.to(device).logical_not();
    torch::Tensor token_r = ops::token_rewards(score, rows.old_logp, ref_logp, mask, ended, tro);  // [N, T]
    const torch::Tensor token_r_unscaled = token_r;  // what reward_with_kl reports
    double reward_divisor = 1.0;
    if (cfg.ppo.reward_scaling) {
      // Reward scaling (Engstrom et al. 2020, "Implementation Matters"): the rewards divided by the
      // running std of the returns (no mean shift: the sign of a reward is kept). A completion's return
      // is its discounted sum of token rewards from its first token; every round adds its rows first.
      torch::Tensor first = mask.to(torch::kFloat32).argmax(1, /*keepdim=*/true);  // [N, 1]
      torch::Tensor ret = ops::discounted_returns(token_r, mask, cfg.ppo.gamma).gather(1, first).squeeze(1);  // [N]
      ret = ret.index({mask.sum(1).gt(0)}).to(torch::kCPU).to(torch::kFloat64).contiguous();
      std::vector<double> round_returns(ret.data_ptr<double>(), ret.data_ptr<double>() + ret.numel());
      if (ranks > 1) round_returns = gather_values(world, round_returns);  // every rank's, in rank order
      return_stats.apply(round_returns);
      if (return_stats.std() > 1e-8) reward_divisor = return_stats.std();
      token_r = token_r / reward_divisor;
    }

    // --- Advantages and returns.
    torch::Tensor advantages, returns;
    if (use_critic) {
      ops::GaeResult g = ops::gae(token_r, old_values, mask, cfg.ppo.gamma, cfg.ppo.lam);
      advantages = g.advantages.to(torch::kFloat32);
      returns = g.returns.to(torch::kFloat32);
    } else if (est == "rloo") {
      advantages = ops::discounted_returns(token_r, mask, cfg.ppo.gamma).to(torch::kFloat32);
    } else {  // reinforce_pp, reinforce_baseline: whitened returns
      advantages = ops::reinforce_pp_advantages(token_r, mask, cfg.ppo.gamma, cfg.ppo.whiten_eps).to(torch::kFloat32);
    }
    const MaskedMoments adv_moments = masked_moments(advantages, mask, world);
    const double adv_mean = adv_moments.mean, adv_std = std::sqrt(adv_moments.var);
    if (use_critic && cfg.ppo.whiten_advantages)
      advantages = ranks == 1 ? ops::masked_whiten(advantages, mask, /*shift_mean=*/true, cfg.ppo.whiten_eps)
                              : whiten_with(advantages, mask, adv_moments, cfg.ppo.whiten_eps);
    rows.advantages = advantages * mask;  // [N, T]: the policy loss takes per-token advantages

    // Round metrics, logged with each of its steps.
    auto row_on = mask.sum(1).gt(0);                                  // [N] rows that count
    torch::Tensor kl_seq = kl_tok.sum(1);                             // [N] per-sequence KL
    // Sums over every rank: rows, per-sequence KL, reward with KL, per-token KL and its tokens.
    const auto sums = train::all_reduce_sum(
        world, {row_on.sum().item<double>(), (kl_seq * row_on).sum().item<double>(),
                ((token_r_unscaled * mask).sum(1) * row_on).sum().item<double>(), (kl_tok * mask).sum().item<double>(),
                mask.sum().item<double>()});
    const double rows_on = std::max<double>(1.0, sums[0]);
    const double kl_seq_mean = sums[1] / rows_on;
    const double reward_with_kl = sums[2] / rows_on;
    const double kl_token_mean = ranks == 1 ? ops::masked_mean(kl_tok, mask).item<double>() : sums[3] / std::max(1.0, sums[4]);
    double kl_max = masked_max(kl_tok, mask);
    if (ranks > 1)
      for (const auto& text : train::all_gather_text(world, Json(kl_max).dump())) kl_max = std::max(kl_max, Json::parse(text).get<double>());
    auto [score_mean, score_std] = tally.reward_mean_std();
    Json round = {{"reward", score_mean},
                  {"reward_std", score_std},
                  {"reward_with_kl", reward_with_kl},
                  {"non_score_reward", -kl_coef * kl_seq_mean},
                  {"kl", kl_token_mean},
                  {"kl_seq", kl_seq_mean},
                  {"kl_max", kl_max},
                  {"kl_coef", kl_coef},
                  {"reward_scale", reward_divisor},
                  {"advantages/mean", adv_mean},
                  {"advantages/std", adv_std},
                  {"completion_length", tally.samples ? static_cast<double>(completion_tokens) / tally.samples : 0.0},
                  {"completion_length_max", tally.max_length},
                  {"truncated", tally.samples ? static_cast<double>(tally.truncated) / tally.samples : 0.0},
                  {"reward_null", tally.nulls},
                  {"rows_trained", rows_on},
                  {"sampler_logp_gap_max", gap_max},
                  {"rollout_tokens_per_s", t_generate > 0 ? completion_tokens / t_generate : 0.0},
                  {"time/generate", t_generate},
                  {"time/score", t_score},
                  {"time/reference", t_reference}};
    if (critic) {
      round["time/critic"] = t_critic;
      round["explained_variance"] = explained_variance(old_values, returns, mask);
      round["value/mean_old"] = ops::masked_mean(old_values, mask).item<double>();
      round["returns/mean_round"] = ops::masked_mean(returns, mask).item<double>();
    }
    for (const auto& [name, sum] : tally.terms) round["reward/" + name] = sum.first / static_cast<double>(sum.second);
    {
      auto per_row = ((rows.advantages.sum(1)) / mask.sum(1).clamp_min(1)).to(torch::kCPU);
      for (int64_t i = 0; i < N; ++i) rows.samples[static_cast<size_t>(i)].advantage = per_row[i].item<double>();
    }
    if (world.is_main()) write_samples(samples_path, "train", step + 1, rows.samples, cfg.ppo.log_samples);

    // --- ppo_epochs passes of mini-batch steps, rows shuffled per pass (seeded by the round's start).
    std::mt19937_64 shuffle(static_cast<uint64_t>(cfg.seed) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step));
    bool save_due = false;
    for (int64_t epoch = 0; epoch < cfg.ppo.ppo_epochs && step < total_steps; ++epoch) {
      std::vector<int64_t> perm(static_cast<size_t>(N));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), shuffle);
      for (int64_t mb_first = 0; mb_first < N && step < total_steps; mb_first += mini_batch_rows) {
        const int64_t mb_n = std::min(mini_batch_rows, N - mb_first);
        std::vector<int64_t> idx(perm.begin() + mb_first, perm.begin() + mb_first + mb_n);
        RoundRows mb = rows.select(idx);
        auto index = torch::tensor(idx, torch::kInt64).to(device);
        torch::Tensor mb_old_values = old_values.index_select(0, index);
        torch::Tensor mb_returns = returns.defined() ? returns.index_select(0, index) : returns;
        std::vector<std::pair<int64_t, int64_t>> micro_rows;
        for (int64_t first = 0; first < mb_n; first += micro) micro_rows.emplace_back(first, std::min(micro, mb_n - first));

        const bool policy_frozen = step < warmup;
        train::StepResult pr, cr;
        double ratio_min = 1, ratio_max = 1, t_train = 0, t_critic_train = 0;
        if (!policy_frozen) {
          const auto ts = RlClock::now();
          std::vector<double> counts;
          for (auto [first, n] : micro_rows) counts.push_back(policy_loss_count(loss_cfg, mb.mask.narrow(0, first, n)));
          const double policy_count = std::accumulate(counts.begin(), counts.end(), 0.0);
          pr = opt.stepper->step(counts, [&](int i) {
            auto [first, n] = micro_rows[static_cast<size_t>(i)];
            data::Batch b = rows_batch(mb, first, n);
            const int64_t w = b.input_ids.size(1);
            PolicyLossInputs in;
            std::tie(in.logp, in.entropy) = logp_and_entropy(model, b, cfg.rollout.temperature);  // [n, w] each
            in.mask = cols(mb.mask, first, n, w);
            in.old_logp = cols(mb.old_logp, first, n, w);
            in.advantages = cols(mb.advantages, first, n, w);
            PolicyLossResult res = policy_loss(loss_cfg, in);
            ratio_min = std::min(ratio_min, res.ratio_min);
            ratio_max = std::max(ratio_max, res.ratio_max);
            if (ptx)
              ptx->add_to(res, i + 1 == static_cast<int>(micro_rows.size()), model, opt.stepper->steps_done(),
                          policy_count, device);
            return train::StepLoss{res.loss_sum, res.metrics};
          });
          t_train = seconds_since(ts);
        }
        if (critic) {
          const auto ts = RlClock::now();
          std::vector<double> counts;
          for (auto [first, n] : micro_rows) counts.push_back(mb.mask.narrow(0, first, n).sum().item<double>());
          auto as_critic = critic->use();  // the forward and the backward (a recompute too)
          cr = critic_opt->stepper->step(counts, [&](int i) {
            auto [first, n] = micro_rows[static_cast<size_t>(i)];
            data::Batch b = rows_batch(mb, first, n);
            const int64_t w = b.input_ids.size(1);
            torch::Tensor v = critic_values(*critic, b);  // [n, w] with the graph
            ValueLossResult vr = value_loss(value_cfg, v, cols(mb_old_values, first, n, w), cols(mb_returns, first, n, w),
                                            cols(mb.mask, first, n, w));
            return train::StepLoss{vr.loss_sum, vr.metrics};
          });
          t_critic_train = seconds_since(ts);
        }
        // The step advances with the clock: the critic's step (every mini-batch), else the policy's.
        const train::StepResult& driver = critic ? cr : pr;
        if (!driver.applied) continue;
        step = driver.step;
        const train::StepResult& shown = policy_frozen ? cr : pr;
        run.progress(step, shown.loss, shown.lr, completion_tokens / std::max<int64_t>(1, steps_per_round));
        Json rec = {{"loss", shown.loss}, {"lr", policy_frozen ? 0.0 : pr.lr}, {"grad_norm", policy_frozen ? 0.0 : pr.grad_norm}};
        if (!policy_frozen && pr.applied) {
          for (const auto& [k, v] : pr.metrics) rec[k] = v;
          rec["ratio/min"] = ratio_min;
          rec["ratio/max"] = ratio_max;
        }
        if (!policy_frozen && !pr.applied) rec["policy_skipped"] = pr.skip_reason;
        if (critic) {
          rec["loss/value"] = cr.loss;
          rec["critic/lr"] = cr.lr;
          rec["critic/grad_norm"] = cr.grad_norm;
          for (const auto& [k, v] : cr.metrics) rec[k] = v;
          rec["time/critic_train"] = t_critic_train;
        }
        rec["policy_frozen"] = policy_frozen;
        for (auto it = round.begin(); it != round.end(); ++it) rec[it.key()] = it.value();
        rec["ppo_epoch"] = epoch;
        rec["time/train"] = t_train;
        rec["epoch"] = order.epoch();
        rec["skipped_steps"] = opt.stepper->total_skips() + (critic_opt ? critic_opt->stepper->total_skips() : 0);
        rec["peak_memory_bytes"] = peak_memory_bytes(device);
        const double secs = seconds_since(started);
        rec["rollout_tokens_per_s_overall"] = secs > 0 ? rollout_tokens_total / secs : 0.0;
        if (run.due(step, cfg.train.log_every) || step == total_steps) run.log(step, rec);
        if (cfg.ppo.symptoms) {
          std::map<std::string, double> m;
          for (auto it = rec.begin(); it != rec.end(); ++it)
            if (it.value().is_number()) m[it.key()] = it.value().get<double>();
            else if (it.value().is_boolean()) m[it.key()] = it.value().get<bool>() ? 1.0 : 0.0;  // policy_frozen
          report_symptoms(symptoms.observe(step, m));
        }
        save_due = save_due || run.due(step, cfg.train.save_every) || step == total_steps;
      }
    }
    // The KL controller sees the round's mean per-sequence KL (Ziegler et al.; TRL updates per batch).
    kl_ctl->update(kl_seq_mean, static_cast<int64_t>(rows_on), static_cast<double>(step) / static_cast<double>(total_steps));

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
  const auto out = stdfs::path(cfg.output_dir);
  export_policy(policy, cfg.lora, out / "final");
  if (critic) train::on_main_rank(world, "saving the critic", [&] { save_critic(*critic, out / "critic"); });
  log::info("done: ", (out / "final").string(), policy.use_lora() ? " (PEFT adapter)" : " (Hugging Face model)",
            critic ? str("; critic: ", (out / "critic").string(), " (value model, reward-model layout)") : std::string());
}

}  // namespace tune::algo

// Reward model: rows [0, B) of a preference batch are the chosen sequences, [B, 2B) the rejected;
// one forward pass gives both rewards. The step normaliser is the number of pairs.
#include "tune/algo/rm.h"

#include <cmath>

#include "tune/algo/logprobs.h"
#include "tune/algo/policy.h"
#include "tune/algo/reward_head.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/data/batch_iterator.h"
#include "tune/model/config.h"
#include "tune/train/communicator.h"
#include "tune/train/stepper.h"

namespace tune::algo {
namespace F = torch::nn::functional;

torch::Tensor bradley_terry_loss(const torch::Tensor& chosen, const torch::Tensor& rejected, const torch::Tensor& margin,
                                 double center_coefficient) {
  torch::Tensor loss = -F::logsigmoid(chosen - rejected - margin);  // [B]
  if (center_coefficient > 0) loss = loss + center_coefficient * (chosen + rejected).pow(2);
  return loss;
}

namespace {

struct PairRewards {
  torch::Tensor chosen, rejected;  // [B] float32
};

PairRewards pair_rewards(model::CausalLM& model, const torch::Tensor& score, const data::PreferenceBatch& b) {
  torch::Tensor r = sequence_rewards(model, score, b.batch);  // [2B]
  return {r.narrow(0, 0, b.num_pairs), r.narrow(0, b.num_pairs, b.num_pairs)};
}

torch::Tensor margins_of(const data::PreferenceBatch& b, bool use_margin) {
  if (!use_margin) return torch::zeros({b.num_pairs}, torch::TensorOptions().dtype(torch::kFloat32).device(b.margin.device()));
  return torch::where(b.has_margin, b.margin, torch::zeros_like(b.margin));
}

// Sums over pairs: accuracy, margin, reward mean and mean square (for the std).
std::map<std::string, double> rm_metric_sums(const PairRewards& r) {
  auto sum = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64).sum().item<double>(); };
  return {{"accuracy", sum((r.chosen > r.rejected).to(torch::kFloat64))},
          {"margin", sum(r.chosen - r.rejected)},
          {"reward_mean", sum((r.chosen + r.rejected) / 2)},
          {"reward_sq", sum((r.chosen.pow(2) + r.rejected.pow(2)) / 2)}};
}

void finish_metrics(Json& rec, const std::string& prefix, std::map<std::string, double> means) {
  const double var = std::max(0.0, means["reward_sq"] - means["reward_mean"] * means["reward_mean"]);
  rec[prefix + "accuracy"] = means["accuracy"];
  rec[prefix + "margin"] = means["margin"];
  rec[prefix + "reward_mean"] = means["reward_mean"];
  rec[prefix + "reward_std"] = std::sqrt(var);
}

}  // namespace

void run_rm(const RmConfig& cfg, bool dry_run) {
  claim_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, dry_run);
  set_threads(cfg.train.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  TrainingText data = load_preference_data(cfg.model, cfg.data);

  data::PreferenceBatchIterator batches(data.train, iterator_options(cfg.train, cfg.data, cfg.seed, data.pad_id));
  const int64_t total_steps = planned_steps(cfg.train, batches.batches_per_epoch());
  log::info("rm: ", total_steps, " optimizer steps (", cfg.train.batch_size, " pairs x ", cfg.train.grad_accum,
            " per step)");
  if (dry_run) return report_dry_run(cfg.model, cfg.method);

  Policy policy = load_policy(cfg.model, cfg.method, cfg.lora);
  auto& model = *policy.model;
  const auto device = model.options().device();
  torch::Tensor score = init_score_head(model, static_cast<uint64_t>(cfg.seed), device);  // [1, H]
  train::NamedParameters trainable;
  for (const auto& [name, t] : policy.trainable)
    if (name != "lm_head.weight") trainable.emplace_back(name, t);  // the LM head is not used
  trainable.emplace_back("score.weight", score);

  Optimization opt(trainable, cfg.optim, cfg.train, total_steps);

  train::CheckpointPolicy ckpt_policy;
  ckpt_policy.keep_last = static_cast<int>(cfg.train.keep_last);
  if (!data.eval.pairs.empty()) {
    ckpt_policy.metric_name = "eval_accuracy";
    ckpt_policy.greater_is_better = true;
  }
  Run run(cfg.output_dir, config::to_json(cfg), manifest_files(cfg.model, cfg.data), cfg.train, total_steps,
          ckpt_policy, cfg.log);
  model.train();

  // Rewards of up to `limit` pairs, no gradients: both columns and the summed loss.
  auto score_pairs = [&](const std::vector<text::TokenizedPair>& pairs, size_t limit, std::vector<float>* all,
                         double* loss_sum) {
    torch::NoGradGuard no_grad;
    model.eval();
    std::map<std::string, double> sums;
    const size_t n = std::min(limit, pairs.size());
    // Data parallelism: evaluation is split in blocks over the ranks and summed; the calibration
    // (`all` wanted) runs whole on every rank, rank 0 saves it.
    const auto [first, last] = all ? std::pair<size_t, size_t>{0, n} : train::block_share(n, train::world());
    for (size_t i = first; i < last; i += static_cast<size_t>(cfg.eval.batch_size)) {
      auto b = to_device(pair_batch(pairs, i, std::min(last, i + static_cast<size_t>(cfg.eval.batch_size)), data.pad_id),
                         device);
      PairRewards r = pair_rewards(model, score, b);
      if (loss_sum)
        *loss_sum += bradley_terry_loss(r.chosen, r.rejected, margins_of(b, cfg.rm.use_margin),
                                        cfg.rm.center_rewards_coefficient)
                         .sum()
                         .item<double>();
      for (const auto& [k, v] : rm_metric_sums(r)) sums[k] += v;
      if (all) {
        auto c = torch::cat({r.chosen, r.rejected}).to(torch::kCPU).contiguous();
        all->insert(all->end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
      }
    }
    model.train();
    if (!all && train::split_evenly(n, train::world())) {
      double unused = 0;
      train::all_reduce_sums(train::world(), loss_sum ? *loss_sum : unused, sums);
    }
    for (auto& [k, v] : sums) v /= static_cast<double>(std::max<size_t>(n, 1));
    return sums;
  };

  auto evaluate = [&](int64_t at) -> std::optional<double> {
    if (data.eval.pairs.empty()) return std::nullopt;
    double loss = 0;
    auto means = score_pairs(data.eval.pairs, static_cast<size_t>(cfg.eval.max_pairs), nullptr, &loss);
    const size_t n = std::min(data.eval.pairs.size(), static_cast<size_t>(cfg.eval.max_pairs));
    Json rec = {{"eval_loss", loss / static_cast<double>(n)}, {"eval_pairs", n}};
    finish_metrics(rec, "eval_", means);
    log::info("eval at step ", at, ": pairwise accuracy ", fixed(100 * rec["eval_accuracy"].get<double>(), 1), "% of ", n,
              " pairs, mean margin ", fixed(rec["eval_margin"].get<double>(), 3), ", loss ",
              fixed(rec["eval_loss"].get<double>(), 4));
    run.log(at, rec);
    return rec["eval_accuracy"].get<double>();
  };

  LoopHooks<data::PreferenceBatch> hooks;
  hooks.count = [](const data::PreferenceBatch& b) { return static_cast<double>(b.num_pairs); };
  hooks.loss = [&](const data::PreferenceBatch& b) {
    PairRewards r = pair_rewards(model, score, b);
    torch::Tensor loss = bradley_terry_loss(r.chosen, r.rejected, margins_of(b, cfg.rm.use_margin),
                                            cfg.rm.center_rewards_coefficient);  // [B]
    return train::StepLoss{loss.sum(), train::metric_sums(rm_metric_sums(r), static_cast<double>(b.num_pairs))};
  };
  hooks.metrics = [](Json& rec, const std::map<std::string, double>& means) { finish_metrics(rec, "", means); };
  hooks.evaluate = evaluate;
  train_loop(run, opt, batches, cfg.train, cfg.eval.every, cfg.resume, device, hooks);

  // Reward statistics for normalising rewards downstream (PPO): held-out pairs when there are some.
  const bool on_eval = !data.eval.pairs.empty();
  std::vector<float> all;
  auto means = score_pairs(on_eval ? data.eval.pairs : data.train.pairs, static_cast<size_t>(cfg.rm.calibration_pairs),
                           &all, nullptr);
  Json stats;
  Json tmp;
  finish_metrics(tmp, "", means);
  stats["mean"] = tmp["reward_mean"];
  stats["std"] = tmp["reward_std"];
  stats["count"] = all.size();
  stats["source"] = on_eval ? "eval" : "train";
  stats["pairwise_accuracy"] = tmp["accuracy"];
  stats["mean_margin"] = tmp["margin"];
  RewardModelFiles files{policy.base_dir, data.pad_id, stats};
  const auto out_dir = std::filesystem::path(cfg.output_dir) / "final";
  train::on_main_rank(train::world(), "saving the reward model",
                      [&] { save_reward_model(model, policy.lora, cfg.lora, score, files, out_dir); });
  log::info("done: ", out_dir.string(), policy.use_lora() ? " (PEFT SEQ_CLS adapter + score head)" : " (Hugging Face sequence classifier)",
            "; rewards mean ", fixed(stats["mean"].get<double>(), 4), ", std ", fixed(stats["std"].get<double>(), 4));
}

}  // namespace tune::algo

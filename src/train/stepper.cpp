#include "tune/train/stepper.h"

#include <cmath>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/train/loss_scale.h"
#include "tune/train/optimizer.h"

namespace tune::train {

Stepper::Stepper(torch::optim::Optimizer& optimizer, LrSchedule schedule, StepperConfig config, Communicator* comm)
    : optimizer_(optimizer),
      schedule_(std::move(schedule)),
      config_(config),
      comm_(comm ? comm : &world()),
      params_(optimizer_parameters(optimizer)) {
  if (comm_->world_size() > 1) {
    std::vector<torch::Tensor> trainable;
    for (const auto& p : params_)
      if (p.requires_grad()) trainable.push_back(p);
    sync_ = std::make_unique<GradientSync>(std::move(trainable), *comm_);
    if (config_.shard_optimizer_state) {
      // Owners balanced by size, greedily in parameter order: the state each rank keeps.
      std::vector<int64_t> load(static_cast<size_t>(comm_->world_size()), 0);
      for (const auto& p : params_) {
        const auto r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
        owner_.push_back(r);
        load[static_cast<size_t>(r)] += p.numel();
      }
    }
  }
  TUNE_CHECK(config_.max_consecutive_skips >= 1, "max_consecutive_skips must be >= 1, got ",
             config_.max_consecutive_skips);
}

StepResult Stepper::step(const std::vector<double>& micro_counts, const std::function<StepLoss(int micro)>& micro_loss) {
  TUNE_CHECK(!micro_counts.empty(), "optimizer step ", step_, ": no micro-batches");
  StepResult r;
  r.step = step_;
  r.lr = schedule_.lr_at(step_);
  optimizer_.zero_grad(/*set_to_none=*/true);

  r.normalizer = global_normalizer(micro_counts, *comm_);
  if (r.normalizer <= 0) {
    // Every rank sees the same global count, so all of them skip together.
    // Counted like a non-finite step: data without trainable tokens must end the run, not loop.
    return skip(r, "no label tokens in any micro-batch of this step (all labels masked?)");
  }
  const double scale = 1.0 / r.normalizer;

  torch::Tensor loss_sum;  // float64 scalar, detached
  std::vector<std::string> metric_names;
  std::vector<double> metric_stats;  // sum, count, sum, count, ... in metric_names' order
  for (int i = 0; i < static_cast<int>(micro_counts.size()); ++i) {
    StepLoss l = micro_loss(i);
    TUNE_CHECK(l.loss_sum.defined() && l.loss_sum.numel() == 1, "optimizer step ", step_, ", micro-batch ", i,
               ": the loss must be a scalar tensor (the summed loss of the micro-batch)");
    const bool last = i + 1 == static_cast<int>(micro_counts.size());
    if (sync_ && last) sync_->arm();
    if (l.loss_sum.requires_grad()) (l.loss_sum * scale).backward();
    torch::Tensor d = l.loss_sum.detach().to(torch::kFloat64).reshape({});
    loss_sum = loss_sum.defined() ? loss_sum + d : d;
    if (i == 0) {
      for (const auto& [k, m] : l.metrics) {
        metric_names.push_back(k);
        metric_stats.push_back(m.sum);
        metric_stats.push_back(m.count);
      }
    } else {
      TUNE_CHECK(l.metrics.size() == metric_names.size(), "optimizer step ", step_, ", micro-batch ", i,
                 ": metric keys differ from micro-batch 0");
      size_t j = 0;
      for (const auto& [k, m] : l.metrics) {
        TUNE_CHECK(k == metric_names[j], "optimizer step ", step_, ", micro-batch ", i, ": unexpected metric '", k, "'");
        metric_stats[2 * j] += m.sum;
        metric_stats[2 * j + 1] += m.count;
        ++j;
      }
    }
  }

  // One all-reduce for the loss and the metrics' (sum, count) pairs, one for the gradients (local:
  // nothing to do).
  std::vector<double> stats{loss_sum.item<double>()};
  stats.insert(stats.end(), metric_stats.begin(), metric_stats.end());
  if (comm_->world_size() > 1) {
    std::vector<torch::Tensor> t{torch::tensor(stats, torch::kFloat64)};
    comm_->all_reduce_sum(t);
    for (size_t j = 0; j < stats.size(); ++j) stats[j] = t[0][static_cast<int64_t>(j)].item<double>();
    sync_->finish();  // the gradient buckets (most already in flight since backward)
  }
  r.loss = stats[0] * scale;
  for (size_t j = 0; j < metric_names.size(); ++j) {
    const double sum = stats[1 + 2 * j], count = stats[2 + 2 * j];
    if (count > 0) r.metrics[metric_names[j]] = sum / count;
  }

  // The norm before clipping; max_norm <= 0 measures without clipping (a factor of 1).
  const double max_norm = config_.max_grad_norm > 0 ? config_.max_grad_norm : std::numeric_limits<double>::infinity();
  r.grad_norm = torch::nn::utils::clip_grad_norm_(params_, max_norm);

  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
    return skip(r, tune::str("non-finite ", !std::isfinite(r.loss) ? "loss" : "gradient norm", " (loss ", r.loss,
                       ", grad norm ", r.grad_norm, ")"));

  set_learning_rate(optimizer_, r.lr);
  if (owner_.empty())
    optimizer_.step();
  else
    update_owned_and_broadcast();
  optimizer_.zero_grad(/*set_to_none=*/true);
  ++step_;
  consecutive_skips_ = 0;
  r.step = step_;
  r.applied = true;
  return r;
}

void Stepper::update_owned_and_broadcast() {
  // AdamW skips a parameter without a gradient (no state is made for it, no decay applied): hiding
  // the gradients of the parameters other ranks own leaves this rank's update to its own.
  const int me = comm_->rank();
  for (size_t k = 0; k < params_.size(); ++k)
    if (owner_[k] != me) params_[k].mutable_grad() = torch::Tensor();
  optimizer_.step();
  torch::NoGradGuard no_grad;
  for (int r = 0; r < comm_->world_size(); ++r) {
    std::vector<torch::Tensor> owned;
    for (size_t k = 0; k < params_.size(); ++k)
      if (owner_[k] == r) owned.push_back(params_[k].detach());
    if (!owned.empty()) comm_->broadcast(owned, r);
  }
}

namespace {
torch::optim::AdamWParamState* adamw_state(torch::optim::Optimizer& opt, const torch::Tensor& p) {
  auto& states = opt.state();
  auto it = states.find(p.unsafeGetTensorImpl());
  return it == states.end() ? nullptr : dynamic_cast<torch::optim::AdamWParamState*>(it->second.get());
}
}  // namespace

void Stepper::gather_optimizer_state() {
  if (owner_.empty()) return;
  TUNE_CHECK(dynamic_cast<torch::optim::AdamW*>(&optimizer_) != nullptr, "ZeRO-1 needs the AdamW optimizer");
  const int me = comm_->rank();
  torch::NoGradGuard no_grad;
  for (int r = 1; r < comm_->world_size(); ++r) {
    std::vector<size_t> ks;
    for (size_t k = 0; k < params_.size(); ++k)
      if (owner_[k] == r) ks.push_back(k);
    if (ks.empty()) continue;
    // Per parameter: its step count (0: no state yet), exp_avg, exp_avg_sq; zeros where not owned.
    std::vector<torch::Tensor> t{torch::zeros({static_cast<int64_t>(ks.size())}, torch::kFloat64)};
    for (size_t i = 0; i < ks.size(); ++i) {
      const auto& p = params_[ks[i]];
      auto* st = me == r ? adamw_state(optimizer_, p) : nullptr;
      if (st) t[0][static_cast<int64_t>(i)] = static_cast<double>(st->step());
      t.push_back(st ? st->exp_avg() : torch::zeros_like(p));
      t.push_back(st ? st->exp_avg_sq() : torch::zeros_like(p));
    }
    comm_->broadcast(t, r);
    if (me != 0) continue;
    for (size_t i = 0; i < ks.size(); ++i) {
      const int64_t steps = static_cast<int64_t>(t[0][static_cast<int64_t>(i)].item<double>());
      if (steps == 0) continue;
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(steps);
      st->exp_avg(t[1 + 2 * i].clone());
      st->exp_avg_sq(t[2 + 2 * i].clone());
      optimizer_.state()[params_[ks[i]].unsafeGetTensorImpl()] = std::move(st);
    }
  }
}

void Stepper::release_foreign_optimizer_state() {
  if (owner_.empty()) return;
  for (size_t k = 0; k < params_.size(); ++k)
    if (owner_[k] != comm_->rank()) optimizer_.state().erase(params_[k].unsafeGetTensorImpl());
}

double Stepper::optimizer_state_bytes() const {
  double bytes = 0;
  for (const auto& [key, st] : optimizer_.state())
    if (auto* a = dynamic_cast<const torch::optim::AdamWParamState*>(st.get()))
      for (const auto& t : {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()})
        if (t.defined()) bytes += static_cast<double>(t.numel() * static_cast<int64_t>(t.element_size()));
  return bytes;
}

std::map<std::string, MetricSum> metric_sums(const std::map<std::string, double>& sums, double count) {
  std::map<std::string, MetricSum> out;
  for (const auto& [k, v] : sums) out[k] = {v, count};
  return out;
}

StepResult Stepper::skip(StepResult r, const std::string& reason) {
  optimizer_.zero_grad(/*set_to_none=*/true);
  r.applied = false;
  r.skip_reason = reason;
  ++consecutive_skips_;
  ++total_skips_;
  if (consecutive_skips_ >= config_.max_consecutive_skips)
    fail("training stopped: ", consecutive_skips_, " optimizer steps in a row were skipped at step ", step_,
         " (last: ", reason, "). For non-finite values lower the learning rate or train in float32; for empty "
         "steps check that the data has trainable tokens (max_consecutive_skips = ", config_.max_consecutive_skips, ")");
  log::warn("optimizer step ", step_, " skipped: ", reason, " (", consecutive_skips_, " in a row)");
  return r;
}

Json Stepper::state() const {
  const auto& c = schedule_.config();
  return Json{{"step", step_},
              {"consecutive_skips", consecutive_skips_},
              {"total_skips", total_skips_},
              {"schedule",
               {{"kind", std::string(schedule_kind_name(c.kind))},
                {"base_lr", schedule_.base_lr()},
                {"total_steps", schedule_.total_steps()},
                {"warmup_steps", schedule_.warmup_steps()},
                {"min_lr_ratio", c.min_lr_ratio}}}};
}

void Stepper::load_state(const Json& state) {
  try {
    step_ = state.at("step").get<int64_t>();
    consecutive_skips_ = state.at("consecutive_skips").get<int>();
    total_skips_ = state.at("total_skips").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint stepper state is incomplete: ", e.what());
  }
  Json now = this->state().at("schedule");
  if (state.contains("schedule") && state.at("schedule") != now)
    log::warn("resuming with a different learning-rate schedule: checkpoint ", state.at("schedule").dump(), ", now ",
              now.dump());
}

}  // namespace tune::train

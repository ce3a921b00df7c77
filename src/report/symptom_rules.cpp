// The symptom table. Each rule reads the history and returns the evidence and the remedy when its
// pathology shows; SymptomWatcher makes it fire once. The DPO and RL rules are the former
// algo::DpoSymptomDetector / algo::RlSymptomDetector logic, unchanged in behaviour.
#include <algorithm>
#include <cmath>

#include "tune/core/str.h"
#include "tune/report/symptoms.h"

namespace tune::report {
namespace {

using Points = std::vector<MetricHistory::Point>;

double head_mean(const Points& p, size_t k) {
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += p[i].value;
  return sum / static_cast<double>(k);
}

double tail_mean(const Points& p, size_t k) {
  double sum = 0;
  for (size_t i = p.size() - k; i < p.size(); ++i) sum += p[i].value;
  return sum / static_cast<double>(k);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// --- RL windows: a key counts once it has two windows of values; means over the first / last window.
struct Rl {
  const RuleContext& c;
  size_t window() const { return static_cast<size_t>(std::max<int64_t>(1, c.thresholds.rl.window)); }
  bool ready() const { return c.history.observations >= c.thresholds.rl.min_steps; }
  bool has(const std::string& key) const {
    const auto* s = c.history.step_series(key);
    return s && s->size() >= 2 * window();
  }
  double start(const std::string& key) const {
    const auto& s = *c.history.step_series(key);
    return head_mean(s, std::min(s.size(), window()));
  }
  double end(const std::string& key) const {
    const auto& s = *c.history.step_series(key);
    return tail_mean(s, std::min(s.size(), window()));
  }
  bool reward_flat() const {
    return has("reward") && std::abs(end("reward") - start("reward")) < c.thresholds.rl.flat_reward;
  }
  bool ppo() const { return c.trainer == "ppo"; }
};

const char* const kCollapseRemedy =
    "beta too low or lr too high: generations may get worse than the SFT model; raise dpo.beta, "
    "lower optim.lr, or add dpo.nll_alpha (an NLL term on the chosen answer)";

// ---------------------------------------------------------------- DPO
std::optional<Finding> margin_slow(const RuleContext& c) {
  const auto& t = c.thresholds.dpo;
  const auto* all = c.history.step_series("rewards/margins");
  if (!all || c.step < t.min_steps) return std::nullopt;
  const size_t n = std::min(all->size(), static_cast<size_t>(std::max<int64_t>(1, t.window)));
  if (static_cast<int64_t>(n) < std::min<int64_t>(t.window, 5)) return std::nullopt;
  std::vector<std::pair<double, double>> pts;
  double mean = 0;
  for (size_t i = all->size() - n; i < all->size(); ++i) {
    pts.emplace_back(static_cast<double>((*all)[i].step), (*all)[i].value);
    mean += (*all)[i].value;
  }
  mean /= static_cast<double>(n);
  const double gain = slope(pts) * t.horizon_steps;
  if (gain >= t.min_margin_gain || mean >= t.target_margin) return std::nullopt;
  return Finding{str("rewards/margins grows slowly: ", fixed(mean, 4), " on average over the last ", n, " steps, +",
                     fixed(gain, 4), " per ", fixed(t.horizon_steps, 0), " steps at the current rate"),
                 "beta is probably too high: lower dpo.beta (e.g. 0.1 -> 0.05), or raise optim.lr"};
}

std::optional<Finding> chosen_collapse(const RuleContext& c) {
  const auto& t = c.thresholds.dpo;
  const auto* losses = c.history.step_series("loss");
  const auto* chosen = c.history.step_series("logps/chosen");
  if (!losses || !chosen || losses->front().value <= 0) return std::nullopt;
  const auto& first = losses->front();
  const auto& now = losses->back();
  const double drop = (first.value - now.value) / first.value;
  const double chosen_fall = chosen->front().value - chosen->back().value;
  if (now.step - first.step <= t.fast_steps && drop >= t.fast_loss_drop && chosen_fall >= t.chosen_drop)
    return Finding{str("loss fell ", fixed(100 * drop, 0), "% in ", now.step - first.step,
                       " steps while logps/chosen fell by ", fixed(chosen_fall, 2), " (", fixed(chosen->front().value, 2),
                       " -> ", fixed(chosen->back().value, 2), ")"),
                   kCollapseRemedy};
  const auto k = static_cast<size_t>(std::max<int64_t>(t.smooth, 1));
  if (losses->size() < 2 * k || chosen->size() < 2 * k) return std::nullopt;
  const double from = head_mean(*chosen, k), to = tail_mean(*chosen, k);
  const double fall = from - to;
  if (tail_mean(*losses, k) < head_mean(*losses, k) && fall >= t.chosen_drop && fall >= t.chosen_relative_drop * std::abs(from))
    return Finding{str("loss is falling while logps/chosen fell from ", fixed(from, 2), " to ", fixed(to, 2), " (means over ",
                       k, " steps): the chosen answers became much less likely"),
                   kCollapseRemedy};
  return std::nullopt;
}

// ---------------------------------------------------------------- RL
std::optional<Finding> kl_explosion(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("kl") || !rl.has("reward")) return std::nullopt;
  const double r0 = rl.start("reward"), r1 = rl.end("reward"), kl1 = rl.end("kl");
  if (!(r1 > r0 + c.thresholds.rl.flat_reward && kl1 > c.thresholds.rl.kl_high)) return std::nullopt;
  return Finding{str("reward rose ", fixed(r0, 3), " -> ", fixed(r1, 3), " while the per-token KL to the reference reached ",
                     fixed(kl1, 3), " (> ", c.thresholds.rl.kl_high, ")"),
                 rl.ppo() ? "the policy is drifting away from the reference to earn reward (likely hacking): raise kl.init "
                            "(or use kl.kind adaptive with a kl.target), lower the learning rate, and read samples.jsonl"
                          : "the policy is drifting away from the reference to earn reward (likely hacking): raise grpo.beta "
                            "(or the KL coefficient), lower the learning rate, and read samples.jsonl"};
}

std::optional<Finding> kl_flat_reward(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("kl") || !rl.reward_flat()) return std::nullopt;
  const double kl1 = rl.end("kl");
  if (!(kl1 < c.thresholds.rl.kl_low)) return std::nullopt;
  return Finding{str("the per-token KL stays at ", fixed(kl1, 6), " and the reward is flat (", fixed(rl.start("reward"), 3),
                     " -> ", fixed(rl.end("reward"), 3), ")"),
                 rl.ppo() ? "the policy is not moving: lower the KL coefficient (kl.init), check that the learning rate is "
                            "not too small for the method (~1e-6 full, ~1e-5 LoRA) and that the scores vary"
                          : "the policy is not moving: lower beta, check that the learning rate is not too small for the "
                            "method (~1e-6 full, ~1e-5 LoRA) and that rewards vary within groups"};
}

std::optional<Finding> length_drift(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("completion_length")) return std::nullopt;
  const double l0 = rl.start("completion_length"), l1 = rl.end("completion_length"), f = c.thresholds.rl.length_factor;
  if (!(l0 > 0 && (l1 > l0 * f || l1 * f < l0))) return std::nullopt;
  return Finding{str("mean completion length went ", fixed(l0, 1), " -> ", fixed(l1, 1), " tokens"),
                 l1 > l0 ? "lengths exploding: add a length or overlong penalty, check the reward model's length bias, "
                           "mask truncated completions (" + c.trainer + ".mask_truncated)"
                         : "lengths collapsing: the reward may pay for short answers; check the reward and samples.jsonl"};
}

std::optional<Finding> entropy_collapse(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("entropy")) return std::nullopt;
  const double e0 = rl.start("entropy"), e1 = rl.end("entropy");
  if (!(e0 > 0 && e1 < e0 * c.thresholds.rl.entropy_floor)) return std::nullopt;
  return Finding{str("policy entropy fell ", fixed(e0, 3), " -> ", fixed(e1, 3), " nats/token"),
                 rl.ppo() ? "exploration is collapsing: raise ppo.clip_high (clip-higher 0.28), add an entropy bonus "
                            "(ppo.entropy_coef), or lower the learning rate"
                          : "exploration is collapsing: raise clip_high (DAPO clip-higher 0.28), add an entropy bonus "
                            "(grpo.entropy_coef), or lower the learning rate"};
}

std::optional<Finding> value_oscillation(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("value/loss") || !rl.has("reward_std")) return std::nullopt;
  const auto& v = *c.history.step_series("value/loss");
  const size_t n = std::min(v.size(), 2 * rl.window());
  double m = 0, s2 = 0;
  for (size_t i = v.size() - n; i < v.size(); ++i) m += v[i].value;
  m /= static_cast<double>(n);
  for (size_t i = v.size() - n; i < v.size(); ++i) s2 += (v[i].value - m) * (v[i].value - m);
  const double cv = m > 0 ? std::sqrt(s2 / static_cast<double>(n)) / m : 0.0;
  const double rs = rl.end("reward_std");
  if (!(cv > c.thresholds.rl.value_loss_cv && rs > c.thresholds.rl.reward_std_high)) return std::nullopt;
  return Finding{str("the value loss oscillates (std / mean ", fixed(cv, 2), " over the last ", n,
                     " steps) while the reward std is ", fixed(rs, 3)),
                 "the critic chases a high-variance target: normalise the reward-model scores (reward.terms[].normalize: "
                 "stats or running), keep ppo.whiten_advantages on, clip scores (ppo.score_clip), lower critic.lr"};
}

std::optional<Finding> reward_flat(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.reward_flat() || c.fired.count("kl_flat_reward") ||
      c.history.observations != c.thresholds.rl.flat_after)
    return std::nullopt;
  return Finding{str("the reward has not moved since the start (", fixed(rl.start("reward"), 3), " -> ",
                     fixed(rl.end("reward"), 3), ")"),
                 "RL only sharpens what the model can already do: run tune probe on the base model (below ~20% correct, "
                 "SFT first or pick a stronger model), and check that groups have reward variance"};
}

std::optional<Finding> truncation(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("truncated")) return std::nullopt;
  const double share = rl.end("truncated");
  if (!(share >= c.thresholds.rl.truncated_high)) return std::nullopt;
  return Finding{str(fixed(100 * share, 1), "% of the completions reached the length limit (mean of the last ", rl.window(),
                     " steps)"),
                 "raise rollout.max_new_tokens, add an overlong penalty to the reward (reward.terms: overlong), or mask "
                 "truncated completions (" + c.trainer + ".mask_truncated); read samples.jsonl for answers that never end"};
}

std::optional<Finding> zero_variance_groups(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("zero_variance_groups")) return std::nullopt;
  const double share = rl.end("zero_variance_groups");
  if (!(share >= c.thresholds.rl.zero_variance_high)) return std::nullopt;
  return Finding{str(fixed(100 * share, 1), "% of the groups had all-equal rewards (mean of the last ", rl.window(),
                     " steps): they give no gradient"),
                 "the prompts are all solved or all failed: run tune probe on the model and prompts (keep the ones solved "
                 "sometimes), raise grpo.group_size, turn on grpo.dynamic_sampling, or use a graded reward"};
}

std::optional<Finding> explained_variance_low(const RuleContext& c) {
  Rl rl{c};
  if (!rl.ready() || !rl.has("explained_variance")) return std::nullopt;
  const double e0 = rl.start("explained_variance"), e1 = rl.end("explained_variance");
  if (!(e1 < c.thresholds.rl.explained_variance_low && e1 <= e0)) return std::nullopt;
  return Finding{str("the critic's explained variance is ", fixed(e1, 3), " (mean of the last ", rl.window(),
                     " steps; it started at ", fixed(e0, 3), "): its values predict the returns worse than a constant"),
                 "the critic is not learning: raise critic.lr or warm the critic up first, normalise the reward-model "
                 "scores (reward.terms[].normalize), or use a critic-free estimator (ppo.estimator: rloo or reinforce_pp)"};
}

std::optional<Finding> reward_hacking(const RuleContext& c) {
  const auto& h = c.history.heldout;
  if (h.size() < 2 || h.back().step != c.step) return std::nullopt;
  // The best earlier measurement (the first of equals), as the watcher saw it then.
  const MetricHistory::Heldout* best = &h.front();
  for (size_t i = 1; i + 1 < h.size(); ++i)
    if (h[i].quality > best->quality) best = &h[i];
  const auto& now = h.back();
  if (now.quality > best->quality || !now.has_reward) return std::nullopt;
  // The reward when quality was at its best; a best measured before the reward had a full window (the
  // evaluation at step 0) is compared with the reward's first window, the earliest it can be judged.
  Rl rl{c};
  if (!best->has_reward && !rl.has("reward")) return std::nullopt;
  const double then = best->has_reward ? best->reward : rl.start("reward");
  if (!(best->quality - now.quality >= c.thresholds.rl.hack_drop && now.reward > then + c.thresholds.rl.flat_reward))
    return std::nullopt;
  return Finding{str("the training reward rose ", fixed(then, 3), " -> ", fixed(now.reward, 3),
                     " while held-out quality fell from its best ", fixed(best->quality, 3), " to ", fixed(now.quality, 3)),
                 "the policy is exploiting the reward (reward hacking): read samples.jsonl, split the reward into terms "
                 "and add penalties for what it exploits, raise the KL coefficient, and retrain the reward model with "
                 "the hacked samples as negatives"};
}

// ---------------------------------------------------------------- supervised (sft, rm, dpo)
std::optional<Finding> loss_spike(const RuleContext& c) {
  const auto& t = c.thresholds.supervised;
  const auto* loss = c.history.step_series("loss");
  const auto w = static_cast<size_t>(std::max<int64_t>(1, t.spike_window));
  if (!loss || loss->size() < w + 1 || loss->back().step != c.step) return std::nullopt;
  std::vector<double> before;
  for (size_t i = loss->size() - 1 - w; i + 1 < loss->size(); ++i) before.push_back((*loss)[i].value);
  const double med = median(before), now = loss->back().value;
  if (!(med > 0 && now > t.spike_factor * med && now - med >= t.spike_min_rise)) return std::nullopt;
  return Finding{str("the loss jumped to ", fixed(now, 4), " at step ", c.step, ", ", fixed(now / med, 1),
                     "x the median ", fixed(med, 4), " of the previous ", w, " records"),
                 "keep gradient clipping on (train.max_grad_norm 1.0 or lower), lower optim.lr or lengthen the warmup "
                 "(optim.warmup_steps), and look for broken or very long samples in the data near this step"};
}

// The held-out quality the checkpoints are chosen by: the key and whether higher is better.
std::optional<std::pair<std::string, bool>> supervised_quality(const RuleContext& c) {
  if (c.trainer == "sft" && c.history.eval_series("eval_exact_match")) return std::pair<std::string, bool>{"eval_exact_match", true};
  if (c.trainer == "rm" && c.history.eval_series("eval_accuracy")) return std::pair<std::string, bool>{"eval_accuracy", true};
  if (c.history.eval_series("eval_loss")) return std::pair<std::string, bool>{"eval_loss", false};
  return std::nullopt;
}

std::optional<Finding> overfitting(const RuleContext& c) {
  const auto q = supervised_quality(c);
  const auto* loss = c.history.step_series("loss");
  if (!q || !loss) return std::nullopt;
  const auto& [key, higher] = *q;
  const auto& e = *c.history.eval_series(key);
  if (e.size() < 2 || e.back().step != c.step) return std::nullopt;
  const MetricHistory::Point* best = &e.front();
  for (size_t i = 1; i + 1 < e.size(); ++i)
    if (higher ? e[i].value > best->value : e[i].value < best->value) best = &e[i];
  const auto& now = e.back();
  const double drop = c.thresholds.supervised.quality_drop;
  const bool worse = higher ? best->value - now.value >= drop : best->value > 0 && now.value >= best->value * (1 + drop);
  if (!worse || now.step <= best->step) return std::nullopt;
  // The training loss at the best evaluation (the last record at or before it) and since.
  const MetricHistory::Point* at_best = nullptr;
  std::vector<double> since;
  for (const auto& p : *loss) {
    if (p.step <= best->step) at_best = &p;
    else if (p.step <= now.step) since.push_back(p.value);
  }
  if (!at_best || since.empty()) return std::nullopt;
  const size_t k = std::min<size_t>(3, since.size());
  double recent = 0;
  for (size_t i = since.size() - k; i < since.size(); ++i) recent += since[i];
  recent /= static_cast<double>(k);
  if (!(recent < at_best->value)) return std::nullopt;
  return Finding{str(key, " went from its best ", fixed(best->value, 4), " (step ", best->step, ") to ", fixed(now.value, 4),
                     " (step ", now.step, ") while the training loss kept falling (", fixed(at_best->value, 4), " -> ",
                     fixed(recent, 4), ")"),
                 "the best checkpoint by the eval metric is kept (checkpoints.json names it): use it, and train fewer "
                 "steps or epochs, lower optim.lr, or add (or mix in) more varied data"};
}

std::optional<Finding> answers_cut(const RuleContext& c) {
  const auto* cut = c.history.eval_series("eval_hit_limit");
  if (!cut || cut->back().step != c.step || c.step <= 0) return std::nullopt;
  const double share = cut->back().value;
  if (!(share >= c.thresholds.supervised.hit_limit_high)) return std::nullopt;
  return Finding{str(fixed(100 * share, 1), "% of the eval answers at step ", c.step,
                     " reached the generation limit without EOS (exact match counts them as wrong)"),
                 "set eval.max_new_tokens to 0 (the limit is then derived from the reference answers) or raise it; if it "
                 "is derived already, the model has not learnt to stop: check that the end-of-turn token is trained"};
}

const std::vector<std::string> kDpo{"dpo"};
const std::vector<std::string> kRl{"grpo", "ppo"};
const std::vector<std::string> kSupervised{"sft", "rm", "dpo"};

}  // namespace

const std::vector<SymptomRule>& symptom_rules() {
  static const std::vector<SymptomRule> rules = {
      {"margin_slow", kDpo, Trigger::step, "rewards/margins",
       "after 100 steps, the slope of rewards/margins over the last 20 records would add < 0.2 in 100 steps, and the "
       "margin is still < 1.0",
       "beta too high", "practitioner-advice.md (DPO: margin grows slowly -> beta too high); numbers ours", margin_slow},
      {"chosen_collapse", kDpo, Trigger::step, "loss, logps/chosen",
       "fast: within 50 steps the loss fell by >= 50% while logps/chosen fell by >= 1 nat; slow: the mean loss of the "
       "last 10 records is below that of the first 10 while mean logps/chosen fell by >= 1 nat and by >= its own "
       "starting magnitude",
       "beta too low or lr too high (likelihood displacement on near-miss pairs)",
       "practitioner-advice.md (DPO loss drops fast, generations worse); slow form measured in docs/dpo.md",
       chosen_collapse},
      {"kl_explosion", kRl, Trigger::step, "reward, kl",
       "after 20 steps, the reward rose by > 0.02 (means of the first / last 10 records) while the last 10 records' "
       "mean per-token KL is > 0.5",
       "KL penalty too weak (the policy hacks the reward)", "practitioner-advice.md (reward rises while KL explodes)",
       kl_explosion},
      {"kl_flat_reward", kRl, Trigger::step, "reward, kl",
       "after 20 steps, the per-token KL is < 1e-4 and the reward moved < 0.02", "KL too strong, or lr too low",
       "practitioner-advice.md (KL very low, reward flat)", kl_flat_reward},
      {"length_drift", kRl, Trigger::step, "completion_length",
       "after 20 steps, the mean completion length halved or doubled (first / last 10 records)",
       "reward-model length bias", "practitioner-advice.md (response length drifts very short / long)", length_drift},
      {"entropy_collapse", kRl, Trigger::step, "entropy",
       "after 20 steps, the mean entropy of the last 10 records fell below a third of the first 10's",
       "entropy coefficient too low (outputs become homogeneous)",
       "practitioner-advice.md (entropy falls fast); DAPO clip-higher", entropy_collapse},
      {"value_oscillation", kRl, Trigger::step, "value/loss, reward_std",
       "after 20 steps, value/loss has std / mean > 0.5 over the last 20 records while reward_std is > 1.5",
       "reward variance too high for the critic", "practitioner-advice.md (value loss oscillates, won't converge)",
       value_oscillation},
      {"reward_flat", kRl, Trigger::step, "reward",
       "at the 50th record, the reward moved < 0.02 since the start (and kl_flat_reward did not fire)",
       "the base model cannot reach the goal by exploration",
       "practitioner-advice.md (GRPO: if reward never rises, probe the pre-RL model)", reward_flat},
      {"truncation", kRl, Trigger::step, "truncated",
       "after 20 steps, >= 50% of the completions of the last 10 records reached the length limit",
       "the length limit is below the answers' length (their reward is then usually 0)",
       "rl-algorithms.md (TRL #5697 / #6263: 97-99% truncated); threshold ours", truncation},
      {"zero_variance_groups", {"grpo"}, Trigger::step, "zero_variance_groups",
       "after 20 steps, >= 80% of the groups of the last 10 records had all-equal rewards",
       "prompts too easy or too hard for the model: no learning signal",
       "rl-algorithms.md (DAPO dynamic sampling); practitioner-advice.md (GRPO: sample many answers first); threshold ours",
       zero_variance_groups},
      {"explained_variance_low", {"ppo"}, Trigger::step, "explained_variance",
       "after 20 steps, the critic's mean explained variance over the last 10 records is < 0 and not above the first "
       "10's",
       "the critic does not learn the returns", "a constant prediction scores 0 (definition of explained variance)",
       explained_variance_low},
      {"reward_hacking", kRl, Trigger::eval, "reward, eval_pass@1",
       "held-out pass@1 fell >= 0.05 below its best while the training reward (mean of the last 10 records) rose "
       "> 0.02 since that best",
       "the reward model or rules are exploited (RM overfit, biased preferences)",
       "practitioner-advice.md (reward up, human review finds errors)", reward_hacking},
      {"loss_spike", kSupervised, Trigger::step, "loss",
       "a record's loss is > 3x the median of the previous 10 records and > 0.1 above it", "instability",
       "practitioner-advice.md (loss spikes -> gradient clipping); thresholds ours", loss_spike},
      {"overfitting", kSupervised, Trigger::eval, "loss, eval_exact_match | eval_accuracy | eval_loss",
       "the eval metric the checkpoints are chosen by is 0.05 (accuracy, exact match) or 5% (eval_loss) worse than "
       "its best at a later evaluation, while the mean training loss of the last 3 records since is below the loss "
       "at the best",
       "overfitting: loss falls while quality does not",
       "practitioner-advice.md (SFT: late in training loss can fall while quality does not); thresholds ours",
       overfitting},
      {"answers_cut", {"sft"}, Trigger::eval, "eval_hit_limit",
       "at an evaluation after step 0, >= 20% of the eval answers reached the generation limit without EOS",
       "eval.max_new_tokens below the reference lengths, or the model never emits EOS",
       "rl-algorithms.md (truncation reports); the sft evaluator's own warning; threshold ours", answers_cut},
  };
  return rules;
}

const SymptomRule* find_rule(const std::string& id) {
  for (const auto& r : symptom_rules())
    if (r.id == id) return &r;
  return nullptr;
}

}  // namespace tune::report

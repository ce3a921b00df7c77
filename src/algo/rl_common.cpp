#include "algo/rl_common.h"

#include "tune/ops/masked.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include "tune/algo/model_source.h"
#include "tune/algo/logprobs.h"
#include "tune/algo/rollout_scoring.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/ops/token_logprob.h"

namespace tune::algo {

RlPrompts load_rl_prompts(const ModelSection& model, const text::DataConfig& data, const reward::RewardConfig& reward,
                          const rollout::SamplingConfig& sampling, int64_t eval_limit, const std::string& reward_hint) {
  if (reward.terms.empty() && reward.command.empty())
    usage_fail("config error: reward.terms is empty: name at least one reward", reward_hint);
  if (data.datasets.empty()) usage_fail("config error: data.datasets is empty: name an RL prompt file");
  if (model.path.empty()) usage_fail("config error: model.path is required");
  sampling.validate();
  if (!sampling.samples_the_policy())
    log::warn("rollout: top_k / top_p / repetition_penalty change the sampled distribution: the tokens are no longer "
              "drawn from the policy whose log-probs the loss uses (docs/rollout.md); RL presets leave them off");

  auto tokenizer = text::Tokenizer::load(model_dir(model));  // a built-in materialised; a missing run named
  text::ChatMasker masker(*tokenizer, text::make_renderer(chat_template_for(model), *tokenizer));
  const text::DataSplit split = text::load_data(data);
  auto render = [&](const std::vector<text::Sample>& samples, int64_t limit) {
    std::vector<rollout::RolloutPrompt> out;
    for (const auto& s : samples) {
      if (static_cast<int64_t>(out.size()) >= limit) break;
      out.push_back(rollout::render_prompt(rollout::as_prompt_sample(s), masker));
    }
    return out;
  };
  RlPrompts prompts;
  prompts.train = render(split.train, INT64_MAX);
  prompts.eval = render(split.eval, eval_limit);
  prompts.tokenizer = std::move(tokenizer);
  if (prompts.train.empty()) usage_fail("data: no training prompts in ", data.datasets.front().path);
  return prompts;
}

PromptOrder::PromptOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) { plan(); }

int64_t PromptOrder::next() {
  if (index_ >= size_) {
    ++epoch_;
    index_ = 0;
    plan();
  }
  return order_[static_cast<size_t>(index_++)];
}

void PromptOrder::restore(const Json& s) {
  epoch_ = s.at("epoch").get<int64_t>();
  index_ = s.at("index").get<int64_t>();
  plan();
}

void PromptOrder::plan() {
  order_.resize(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) order_[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch_) * 0x9E3779B97F4A7C15ull);
  std::shuffle(order_.begin(), order_.end(), rng);
}

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

void append_lines(const std::filesystem::path& path, const std::string& text) {
  if (text.empty()) return;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) fail("cannot open ", path.string(), " for appending: ", std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
  std::fclose(f);
  if (!ok) fail("cannot write to ", path.string(), ": ", std::strerror(errno));
}

void write_samples(const std::filesystem::path& path, const std::string& kind, int64_t at,
                   const std::vector<RoundSample>& samples, int64_t n) {
  std::string text;
  for (int64_t i = 0; i < std::min<int64_t>(n, static_cast<int64_t>(samples.size())); ++i) {
    const auto& s = samples[static_cast<size_t>(i)];
    Json j = {{"step", at}, {"kind", kind}, {"prompt", s.prompt}, {"completion", s.completion},
              {"reward", s.reward ? Json(*s.reward) : Json()}, {"terms", s.terms}, {"advantage", s.advantage},
              {"length", s.length}, {"finish", s.finish}};
    text += j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  }
  append_lines(path, text);
}

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

torch::Tensor cols(const torch::Tensor& x, int64_t first, int64_t n, int64_t width) {
  return x.defined() ? x.narrow(0, first, n).narrow(1, 0, width) : x;
}

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

void round_logprobs(model::CausalLM& model, ReferenceModel& reference, RoundRows& rows, int64_t micro,
                    double temperature, bool need_old) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t N = rows.size(), T = rows.input_ids.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(rows.input_ids.device());
  if (need_old) {
    rows.old_logp = torch::zeros({N, T}, opts);
    for (int64_t first = 0; first < N; first += micro) {
      const int64_t n = std::min(micro, N - first);
      data::Batch b = rows_batch(rows, first, n);
      const int64_t w = b.input_ids.size(1);
      rows.old_logp.narrow(0, first, n).narrow(1, 0, w).copy_(label_logprobs(model, b, temperature));
    }
  }
  model.train(was_training);
  if (reference.active()) {
    rows.ref_logp = torch::zeros({N, T}, opts);
    for (int64_t first = 0; first < N; first += micro) {
      const int64_t n = std::min(micro, N - first);
      data::Batch b = rows_batch(rows, first, n);
      const int64_t w = b.input_ids.size(1);
      rows.ref_logp.narrow(0, first, n).narrow(1, 0, w).copy_(
          reference.run([&](model::CausalLM& m) { return label_logprobs(m, b, temperature); }));
    }
  }
}

std::pair<double, double> mean_std(const std::vector<double>& v) {
  if (v.empty()) return {0, 0};
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size()))};
}

void add_term_details(const reward::Scores& scores, std::map<std::string, std::pair<double, int64_t>>& sums) {
  for (const auto& t : scores.terms)
    for (const auto& [key, d] : t.details) {
      if (d.count <= 0) continue;
      auto& s = sums[t.name + "/" + key];
      s.first += d.sum;
      s.second += static_cast<int64_t>(d.count);
    }
}

Json evaluate_pass_at_1(rollout::RolloutEngine& engine, const std::vector<rollout::RolloutPrompt>& prompts,
                        reward::Composite& rewards, const GrpoEvalSection& eval, const rollout::SamplingConfig& base,
                        torch::Generator& generator, std::vector<RoundSample>* shown) {
  const std::string pass_term = eval.pass_term.empty() ? rewards.names().front() : eval.pass_term;
  Json rec;
  std::optional<double> metric;
  for (const bool greedy : {true, false}) {
    if (greedy ? !eval.greedy : !eval.sampled) continue;
    rollout::SamplingConfig sampling = base;
    if (greedy) sampling.temperature = 0;
    int64_t passed = 0, judged = 0, cut = 0;
    double reward_sum = 0;
    // Data parallelism: each rank answers its strided share of the prompts; the counts are summed.
    const std::vector<size_t> mine = train::strided_share(prompts.size(), train::world());
    for (size_t first = 0; first < mine.size(); first += static_cast<size_t>(eval.batch_size)) {
      const size_t last = std::min(mine.size(), first + static_cast<size_t>(eval.batch_size));
      std::vector<rollout::RolloutPrompt> chunk;
      for (size_t k = first; k < last; ++k) chunk.push_back(prompts[mine[k]]);
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
        passed += *term->values[i] >= eval.pass_threshold;
        if (greedy && shown && shown->size() < 4)
          shown->push_back({0, rs[i].prompt, rs[i].completion, scores.total[i], Json::object(), 0,
                            r.samples[i].completion_length, r.samples[i].truncated, ""});
      }
    }
    auto sums = train::all_reduce_sum(train::world(), {static_cast<double>(passed), static_cast<double>(judged),
                                                       static_cast<double>(cut), reward_sum});
    passed = static_cast<int64_t>(sums[0]);
    judged = static_cast<int64_t>(sums[1]);
    cut = static_cast<int64_t>(sums[2]);
    reward_sum = sums[3];
    const std::string key = greedy ? "eval_pass@1_greedy" : "eval_pass@1_sampled";
    const double rate = judged > 0 ? static_cast<double>(passed) / static_cast<double>(judged) : 0.0;
    rec[key] = rate;
    rec[greedy ? "eval_reward_greedy" : "eval_reward_sampled"] = reward_sum / static_cast<double>(prompts.size());
    rec[greedy ? "eval_truncated_greedy" : "eval_truncated_sampled"] =
        static_cast<double>(cut) / static_cast<double>(prompts.size());
    if (!metric || greedy) metric = rate;
  }
  rec["eval_pass@1"] = metric ? *metric : 0.0;
  rec["eval_prompts"] = prompts.size();
  return rec;
}

void restore_rollout_streams(torch::Generator& generator, const Json& dp, train::Communicator& comm) {
  const Json per_rank = dp.contains("rollout_rng_ranks") ? dp.at("rollout_rng_ranks") : Json();
  if (per_rank.is_array() && static_cast<int>(per_rank.size()) == comm.world_size())
    set_generator_hex(generator, per_rank.at(static_cast<size_t>(comm.rank())).get<std::string>());
  else if (comm.world_size() == 1)
    set_generator_hex(generator, dp.at("rollout_rng").get<std::string>());
  else
    log::warn("resuming on ", comm.world_size(), " ranks from a checkpoint of ", per_rank.is_array() ? per_rank.size() : 1,
              ": the rollout random streams start afresh (prompts continue where they were)");
}

std::vector<double> gather_values(train::Communicator& comm, const std::vector<double>& values) {
  if (comm.world_size() == 1) return values;
  std::vector<double> out;
  for (const auto& text : train::all_gather_text(comm, Json(values).dump()))
    for (double v : Json::parse(text).get<std::vector<double>>()) out.push_back(v);
  return out;
}

MaskedMoments masked_moments(const torch::Tensor& x, const torch::Tensor& mask, train::Communicator& comm) {
  MaskedMoments m;
  if (comm.world_size() == 1) {
    m.mean = ops::masked_mean(x, mask).item<double>();
    m.var = ops::masked_var(x, mask).item<double>();
    m.count = mask.to(torch::kBool).sum().item<double>();
    return m;
  }
  torch::Tensor valid = mask.to(torch::kBool);
  torch::Tensor v = x.masked_fill(valid.logical_not(), 0).to(torch::kFloat64);
  auto s = train::all_reduce_sum(comm, {v.sum().item<double>(), v.square().sum().item<double>(), valid.sum().item<double>()});
  m.count = s[2];
  if (m.count > 0) m.mean = s[0] / m.count;
  if (m.count >= 2) m.var = std::max(0.0, (s[1] - m.count * m.mean * m.mean) / (m.count - 1));
  return m;
}

torch::Tensor whiten_with(const torch::Tensor& x, const torch::Tensor& mask, const MaskedMoments& m, double eps) {
  torch::Tensor valid = mask.to(torch::kBool);
  if (m.count < 2) return torch::zeros_like(x);
  torch::Tensor w = (x - m.mean) / std::sqrt(m.var + eps);
  return torch::where(valid, w, torch::zeros({}, x.options()));
}

std::vector<int64_t> gather_counts(train::Communicator& comm, int64_t count) {
  std::vector<double> slots(static_cast<size_t>(comm.world_size()), 0.0);
  slots[static_cast<size_t>(comm.rank())] = static_cast<double>(count);
  slots = train::all_reduce_sum(comm, slots);
  std::vector<int64_t> out;
  for (double v : slots) out.push_back(static_cast<int64_t>(v));
  return out;
}

RoundTally RoundTally::over(train::Communicator& comm) const {
  RoundTally t = *this;
  for (double r : rewards) {
    t.reward_sum += r;
    t.reward_squares += r * r;
  }
  t.reward_count = static_cast<int64_t>(rewards.size());
  t.fewest_rows = rows;
  if (comm.world_size() == 1) return t;
  Json mine = {{"counts", {samples, nulls, completion_tokens, truncated, max_length, groups, flat_groups, rows}},
               {"rewards", {t.reward_sum, t.reward_squares, t.reward_count}},
               {"terms", Json::object()}};
  for (const auto& [name, sum] : terms) mine["terms"][name] = {sum.first, sum.second};
  RoundTally all;
  all.fewest_rows = std::numeric_limits<int64_t>::max();
  for (const auto& text : train::all_gather_text(comm, mine.dump())) {
    const Json j = Json::parse(text);
    const auto& c = j.at("counts");
    all.samples += c[0].get<int64_t>();
    all.nulls += c[1].get<int64_t>();
    all.completion_tokens += c[2].get<int64_t>();
    all.truncated += c[3].get<int64_t>();
    all.max_length = std::max(all.max_length, c[4].get<int64_t>());
    all.groups += c[5].get<int64_t>();
    all.flat_groups += c[6].get<int64_t>();
    all.rows += c[7].get<int64_t>();
    all.fewest_rows = std::min(all.fewest_rows, c[7].get<int64_t>());
    all.reward_sum += j.at("rewards")[0].get<double>();
    all.reward_squares += j.at("rewards")[1].get<double>();
    all.reward_count += j.at("rewards")[2].get<int64_t>();
    for (auto it = j.at("terms").begin(); it != j.at("terms").end(); ++it) {
      all.terms[it.key()].first += it.value()[0].get<double>();
      all.terms[it.key()].second += it.value()[1].get<int64_t>();
    }
  }
  return all;
}

std::pair<double, double> RoundTally::reward_mean_std() const {
  if (!rewards.empty() && reward_count == static_cast<int64_t>(rewards.size())) return mean_std(rewards);  // one process
  if (reward_count == 0) return {0, 0};
  const double n = static_cast<double>(reward_count), m = reward_sum / n;
  return {m, std::sqrt(std::max(0.0, reward_squares / n - m * m))};
}

}  // namespace tune::algo

// tune probe and tune sample: the model's samples on prompt records, scored by a reward, before
// (probe) or instead of (sample) RL. Both read as: load -> roll out in batches -> score -> count.
#include "tune/algo/probe.h"

#include <algorithm>
#include <cmath>

#include "tune/algo/model_reward.h"
#include "tune/algo/policy.h"
#include "tune/algo/rollout_scoring.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"
#include "tune/rollout/sampling.h"
#include "tune/text/tokenizer.h"

namespace tune::algo {
namespace {

// The model (with its adapter), its tokenizer, the rendered prompts, the reward and the engine.
struct SamplingRun {
  std::shared_ptr<text::Tokenizer> tokenizer;
  std::shared_ptr<model::CausalLM> model;
  lora::LoraSet adapter;
  std::vector<rollout::RolloutPrompt> prompts;
  reward::Composite rewards;
  std::unique_ptr<rollout::RolloutEngine> engine;
  torch::Generator generator;

  explicit SamplingRun(const SamplingRunConfig& cfg) {
    if (cfg.model.path.empty()) usage_fail("config error: model.path is required (--model DIR)");
    if (cfg.input.empty()) usage_fail("config error: input is required (--input prompts.jsonl)");
    cfg.rollout.validate();
    tokenizer = text::Tokenizer::load(cfg.model.path);
    text::ChatMasker masker(*tokenizer, text::make_renderer(chat_template_for(cfg.model), *tokenizer));
    rollout::PromptFileOptions po;
    po.max_records = cfg.max_prompts;
    prompts = rollout::load_prompts(cfg.input, masker, po);
    if (prompts.empty()) usage_fail(cfg.input, ": no prompt records");
    reward::RewardConfig rc = cfg.reward;
    if (rc.terms.empty() && rc.command.empty()) {
      // Default: the record's reference, found in the completion (docs/rewards.md, answer_match).
      reward::TermConfig t;
      t.kind = "answer_match";
      t.name = "correct";
      rc.terms.push_back(t);
    }
    rewards = build_reward(rc);
    const torch::Device device = resolve_device(cfg.model.device);
    model = model::load_pretrained(cfg.model.path, resolve_dtype(cfg.model.dtype, device), device);
    if (!cfg.adapter.empty()) adapter = lora::load_adapter(*model, cfg.adapter);
    model->eval();
    engine = std::make_unique<rollout::RolloutEngine>(*model, rollout::engine_options(*tokenizer, cfg.engine, &adapter));
    generator = rollout::make_generator(device, static_cast<uint64_t>(cfg.seed));
  }

  // Calls fn(first_prompt, prompts_of_chunk, rollout, reward samples, scores) for each chunk.
  template <class Fn>
  void each_chunk(int64_t batch_size, int64_t samples_per_prompt, const rollout::SamplingConfig& sampling, Fn&& fn) {
    for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(batch_size)) {
      const size_t last = std::min(prompts.size(), first + static_cast<size_t>(batch_size));
      std::vector<rollout::RolloutPrompt> chunk(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                                prompts.begin() + static_cast<std::ptrdiff_t>(last));
      auto r = engine->rollout(rollout::prompt_ids(chunk), samples_per_prompt, sampling, generator);
      auto rs = reward_samples(chunk, r);
      reward::Scores scores = rewards.score_terms(rs);
      fn(static_cast<int64_t>(first), chunk, r, rs, scores);
    }
  }
};

Json terms_json(const reward::Scores& scores, size_t i) {
  Json t = Json::object();
  for (const auto& term : scores.terms)
    if (const auto& v = term.values[i]) t[term.name] = *v;
  return t;
}

// Counts of one prompt's k samples.
struct PromptTally {
  int64_t judged = 0, passed = 0;
  std::vector<double> rewards;  // judged totals
};

}  // namespace

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  TUNE_CHECK(n >= 0 && c >= 0 && c <= n && k > 0 && k <= n, "pass@k needs 0 <= c <= n and 0 < k <= n (n ", n,
             ", c ", c, ", k ", k, ")");
  if (n - c < k) return 1.0;
  // 1 - C(n-c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i), stable for any n.
  double fail = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

Json ProbeReport::to_json() const {
  Json j = {{"prompts", prompts}, {"k", k}, {"pass@1_sampled", pass1_sampled}, {"reward_mean", reward_mean},
            {"reward_null", reward_null}, {"all_equal_share", all_equal_share}, {"always_share", always_share},
            {"never_share", never_share}, {"truncated_share", truncated_share},
            {"completion_length", completion_length}, {"verdict", verdict}, {"advice", advice}};
  j["pass@1_greedy"] = pass1_greedy ? Json(*pass1_greedy) : Json();
  for (const auto& [at, v] : pass_at) j["pass@" + std::to_string(at)] = v;  // pass@1 = pass@1_sampled
  if (filtered > 0) j["filtered"] = filtered;
  return j;
}

ProbeReport run_probe(const ProbeConfig& cfg) {
  SamplingRun run(cfg);
  const int64_t P = static_cast<int64_t>(run.prompts.size());
  log::info("probe: ", P, " prompts x k ", cfg.k, " samples at temperature ", cfg.rollout.temperature,
            cfg.greedy ? " + one greedy answer each" : "", "; reward ", join(run.rewards.names(), " + "));
  std::string samples_text;
  auto record_sample = [&](const char* kind, int64_t prompt, const rollout::RolloutPrompt& p,
                           const rollout::SampleInfo& info, const reward::Scores& scores, size_t i,
                           std::optional<bool> pass) {
    if (cfg.samples.empty()) return;
    Json j = {{"prompt_index", prompt}, {"kind", kind}, {"completion", info.text},
              {"reward", scores.total[i] ? Json(*scores.total[i]) : Json()}, {"terms", terms_json(scores, i)},
              {"pass", pass ? Json(*pass) : Json()}, {"length", info.completion_length},
              {"finish", std::string(rollout::finish_reason_name(info.finish))}};
    j["prompt"] = prompt_record(p);
    samples_text += j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  };

  ProbeReport rep;
  rep.prompts = P;
  rep.k = cfg.k;
  if (cfg.greedy) {
    rollout::SamplingConfig greedy = cfg.rollout;
    greedy.temperature = 0;
    int64_t passed = 0;
    run.each_chunk(cfg.batch_size, 1, greedy, [&](int64_t first, auto& chunk, auto& r, auto&, auto& scores) {
      auto pass = passes(scores, cfg.pass_term, cfg.pass_threshold);
      for (size_t i = 0; i < r.samples.size(); ++i) {
        const int64_t prompt = first + r.samples[i].prompt_index;
        passed += pass[i].value_or(false);
        record_sample("greedy", prompt, chunk[static_cast<size_t>(r.samples[i].prompt_index)], r.samples[i], scores, i,
                      pass[i]);
      }
    });
    rep.pass1_greedy = static_cast<double>(passed) / static_cast<double>(P);
  }

  std::vector<PromptTally> tally(static_cast<size_t>(P));
  int64_t samples = 0, truncated = 0, tokens = 0;
  double reward_sum = 0;
  int64_t reward_n = 0;
  run.each_chunk(cfg.batch_size, cfg.k, cfg.rollout, [&](int64_t first, auto& chunk, auto& r, auto&, auto& scores) {
    auto pass = passes(scores, cfg.pass_term, cfg.pass_threshold);
    for (size_t i = 0; i < r.samples.size(); ++i) {
      const auto& info = r.samples[i];
      const int64_t prompt = first + info.prompt_index;
      auto& t = tally[static_cast<size_t>(prompt)];
      ++samples;
      truncated += info.truncated;
      tokens += info.completion_length;
      if (pass[i]) {
        ++t.judged;
        t.passed += *pass[i];
      }
      if (scores.total[i]) {
        t.rewards.push_back(*scores.total[i]);
        reward_sum += *scores.total[i];
        ++reward_n;
      } else {
        ++rep.reward_null;
      }
      record_sample("sampled", prompt, chunk[static_cast<size_t>(info.prompt_index)], info, scores, i, pass[i]);
    }
  });

  // pass@j for j = 1, 2, 4, ..., k (and k itself), over the prompts with at least j judged samples.
  std::vector<int64_t> ats;
  for (int64_t j = 1; j < cfg.k; j *= 2) ats.push_back(j);
  ats.push_back(cfg.k);
  for (int64_t j : ats) {
    double sum = 0;
    int64_t n = 0;
    for (const auto& t : tally)
      if (t.judged >= j) {
        sum += pass_at_k(t.judged, t.passed, j);
        ++n;
      }
    rep.pass_at.emplace_back(j, n > 0 ? sum / static_cast<double>(n) : 0.0);
  }
  rep.pass1_sampled = rep.pass_at.front().second;
  int64_t equal = 0, always = 0, never = 0;
  std::string filtered;
  for (int64_t p = 0; p < P; ++p) {
    const auto& t = tally[static_cast<size_t>(p)];
    const bool all_equal = t.rewards.size() < 2 ||
                           std::all_of(t.rewards.begin(), t.rewards.end(), [&](double v) { return v == t.rewards.front(); });
    equal += all_equal;
    always += t.judged > 0 && t.passed == t.judged;
    never += t.passed == 0;
    if (t.passed > 0 && t.passed < t.judged) {
      ++rep.filtered;
      filtered += prompt_record(run.prompts[static_cast<size_t>(p)]).dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    }
  }
  rep.all_equal_share = static_cast<double>(equal) / static_cast<double>(P);
  rep.always_share = static_cast<double>(always) / static_cast<double>(P);
  rep.never_share = static_cast<double>(never) / static_cast<double>(P);
  rep.truncated_share = samples ? static_cast<double>(truncated) / static_cast<double>(samples) : 0.0;
  rep.completion_length = samples ? static_cast<double>(tokens) / static_cast<double>(samples) : 0.0;
  rep.reward_mean = reward_n ? reward_sum / static_cast<double>(reward_n) : 0.0;

  // The verdict: practitioners' rule of thumb (below ~20% correct RL will not rescue a model),
  // softened by pass@k: a prompt solved in some of k samples still gives GRPO a signal.
  const double pass_k = rep.pass_at.back().second;
  if (pass_k < 0.2) {
    rep.verdict = "too_hard";
    rep.advice = str("pass@", cfg.k, " is ", fixed(100 * pass_k, 1), "%: RL has almost nothing to reinforce; SFT first ",
                     "(tune sample keeps the best of n samples as SFT records) or start from a stronger model");
  } else if (rep.pass1_sampled < 0.2) {
    rep.verdict = "weak";
    rep.advice = str("below ~20% of samples pass (", fixed(100 * rep.pass1_sampled, 1), "%) but pass@", cfg.k, " is ",
                     fixed(100 * pass_k, 1), "%: RL can work with grpo.dynamic_sampling (", fixed(100 * rep.all_equal_share, 0),
                     "% of groups would have no signal); practitioners SFT first");
  } else if (rep.always_share > 0.8) {
    rep.verdict = "too_easy";
    rep.advice = str(fixed(100 * rep.always_share, 1), "% of prompts are always solved: little left to learn; harder "
                     "prompts, or keep the rest with --write-filtered");
  } else if (rep.all_equal_share > 0.6) {
    rep.verdict = "little_signal";
    rep.advice = str(fixed(100 * rep.all_equal_share, 0), "% of prompts give k equal rewards (no GRPO signal): keep the ",
                     "others with --write-filtered, or use grpo.dynamic_sampling");
  } else {
    rep.verdict = "ready";
    rep.advice = "the model solves these prompts sometimes: GRPO has signal";
  }
  if (!cfg.samples.empty()) fs::write_file_atomic(cfg.samples, samples_text);
  if (!cfg.write_filtered.empty()) fs::write_file_atomic(cfg.write_filtered, filtered);
  return rep;
}

Json SampleReport::to_json() const {
  return {{"prompts", prompts}, {"kept", kept}, {"samples", samples}, {"best_reward_mean", best_reward_mean}};
}

SampleReport run_sample(const SampleConfig& cfg) {
  if (cfg.out.empty()) usage_fail("config error: out is required (--out sft.jsonl)");
  SamplingRun run(cfg);
  log::info("sample: ", run.prompts.size(), " prompts x n ", cfg.n, " samples at temperature ", cfg.rollout.temperature,
            "; kept: the best reaching reward ", cfg.min_reward, " (", join(run.rewards.names(), " + "), ")");
  SampleReport rep;
  rep.prompts = static_cast<int64_t>(run.prompts.size());
  std::string text;
  double best_sum = 0;
  run.each_chunk(cfg.batch_size, cfg.n, cfg.rollout, [&](int64_t, auto& chunk, auto& r, auto&, auto& scores) {
    rep.samples += static_cast<int64_t>(r.samples.size());
    // Rows are prompt-major: the n samples of a prompt are consecutive. The first best one wins.
    for (size_t row = 0; row < r.samples.size();) {
      const int64_t prompt = r.samples[row].prompt_index;
      std::optional<size_t> best;
      size_t end = row;
      for (; end < r.samples.size() && r.samples[end].prompt_index == prompt; ++end)
        if (scores.total[end] && (!best || *scores.total[end] > *scores.total[*best])) best = end;
      if (best && *scores.total[*best] >= cfg.min_reward) {
        const auto& p = chunk[static_cast<size_t>(prompt)];
        Json messages = text::messages_to_json(p.messages);
        messages.push_back({{"role", "assistant"}, {"content", r.samples[*best].text}});
        Json rec = {{"messages", messages}, {"reward", *scores.total[*best]}};
        text += rec.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
        ++rep.kept;
        best_sum += *scores.total[*best];
      }
      row = end;
    }
  });
  rep.best_reward_mean = rep.kept ? best_sum / static_cast<double>(rep.kept) : 0.0;
  fs::write_file_atomic(cfg.out, text);
  log::info("sample: kept ", rep.kept, " of ", rep.prompts, " prompts -> ", cfg.out);
  if (rep.kept == 0)
    log::warn("sample: no prompt had a sample reaching min_reward ", cfg.min_reward, ": ", cfg.out, " is empty");
  return rep;
}

}  // namespace tune::algo

// tune probe / tune sample: a model's samples on prompt records, scored by a reward. Settings come
// from flags, key=value overrides and optionally --config FILE, which may be an RL config: its
// model, reward, rollout and engine sections are used, and its first dataset is the input.
#include <cmath>
#include <iostream>

#include "tune/algo/probe.h"
#include "tune/cli/command.h"
#include "tune/core/config.h"
#include "tune/core/str.h"

namespace tune::cli {
namespace {

struct SamplingArgs {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string model, adapter, input, reward_kind, reward_command;
  int64_t count = -1, max_new_tokens = -1, max_prompts = -1, seed = -1, batch_size = -1;
  double temperature = -1;
  bool json = false;

  void add_to(CLI::App* sub, const char* count_flag, const char* count_help) {
    sub->add_option("--config,-c", config_file, "YAML with model / reward / rollout sections (an RL config works)");
    sub->add_option("--model,-m", model, "Hugging Face model directory");
    sub->add_option("--adapter", adapter, "PEFT LoRA adapter directory to apply");
    sub->add_option("--input,-i", input, "JSONL of prompt records with references");
    sub->add_option(count_flag, count, count_help);
    sub->add_option("--temperature,-t", temperature, "sampling temperature (default 1.0)");
    sub->add_option("--max-new-tokens", max_new_tokens, "completion tokens at most (default 256)");
    sub->add_option("--max-prompts", max_prompts, "prompts read at most (0: all)");
    sub->add_option("--batch-size", batch_size, "prompts per rollout call (default 16)");
    sub->add_option("--seed", seed, "sampling seed");
    sub->add_option("--reward", reward_kind,
                    "one reward term of this kind with its default options (answer_match, format, ...; "
                    "default answer_match against the record's reference)");
    sub->add_option("--reward-command", reward_command, "an external reward program (docs/rewards.md)");
    sub->add_flag("--json", json, "print the summary as JSON");
    sub->add_option("overrides", overrides, "key=value settings (reward.terms[0].extract=boxed, rollout.top_p=0.9)");
  }

  ConfigTree tree(const std::vector<std::pair<std::string, Json>>& extra_flags,
                  const std::vector<std::string>& own_keys) const {
    ConfigTree out;
    if (!config_file.empty()) {
      Json file = parse_yaml_file(config_file);
      out.sources.fallback = config_file;
      // Keep the sections a sampling run has; an RL config's data section names the input.
      for (const char* key : {"model", "adapter", "input", "reward", "rollout", "engine", "seed", "pass_term",
                              "pass_threshold", "max_prompts", "batch_size"})
        if (file.contains(key)) out.tree[key] = file[key];
      for (const auto& key : own_keys)
        if (file.contains(key)) out.tree[key] = file[key];
      if (!file.contains("input") && file.contains("data") && file["data"].contains("datasets") &&
          file["data"]["datasets"].is_array() && !file["data"]["datasets"].empty() &&
          file["data"]["datasets"][0].contains("path"))
        out.tree["input"] = file["data"]["datasets"][0]["path"];
    }
    for (const auto& arg : overrides) {
      auto [key, value] = parse_override(arg);
      config::set_path(out.tree, key, value);
      out.sources.by_path[key] = "command line '" + arg + "'";
    }
    std::vector<std::pair<std::string, Json>> flags = extra_flags;
    if (!model.empty()) flags.emplace_back("model.path", model);
    if (!adapter.empty()) flags.emplace_back("adapter", adapter);
    if (!input.empty()) flags.emplace_back("input", input);
    if (temperature >= 0) flags.emplace_back("rollout.temperature", temperature);
    if (max_new_tokens >= 0) flags.emplace_back("rollout.max_new_tokens", max_new_tokens);
    if (max_prompts >= 0) flags.emplace_back("max_prompts", max_prompts);
    if (batch_size >= 0) flags.emplace_back("batch_size", batch_size);
    if (seed >= 0) flags.emplace_back("seed", seed);
    if (!reward_kind.empty()) flags.emplace_back("reward.terms", Json::array({Json{{"kind", reward_kind}}}));
    if (!reward_command.empty()) flags.emplace_back("reward.command", reward_command);
    for (const auto& [key, value] : flags) {
      config::set_path(out.tree, key, value);
      out.sources.by_path[key] = "command-line flag";
    }
    return out;
  }
};

std::string percent(double v) { return fixed(100 * v, 1) + "%"; }

void print_probe(const algo::ProbeReport& r) {
  std::cout << "prompts           " << r.prompts << " (k = " << r.k << " samples each)\n";
  std::cout << "pass@1 greedy     " << (r.pass1_greedy ? percent(*r.pass1_greedy) : std::string("-")) << "\n";
  for (const auto& [at, v] : r.pass_at)
    std::cout << str("pass@", at, at == 1 ? " sampled" : "").append(18 - str("pass@", at, at == 1 ? " sampled" : "").size(), ' ')
              << percent(v) << "\n";
  std::cout << "reward mean       " << fixed(r.reward_mean, 4) << (r.reward_null ? str(" (", r.reward_null, " not judged)") : "")
            << "\n";
  std::cout << "no GRPO signal    " << percent(r.all_equal_share) << " of prompts (always solved " << percent(r.always_share)
            << ", never " << percent(r.never_share) << ")\n";
  std::cout << "completion length " << fixed(r.completion_length, 1) << " tokens, truncated " << percent(r.truncated_share)
            << "\n";
  if (r.filtered) std::cout << "filtered          " << r.filtered << " prompts solved sometimes\n";
  std::cout << "verdict           " << r.verdict << ": " << r.advice << "\n";
}

}  // namespace

Command add_probe(CLI::App& app) {
  auto a = std::make_shared<SamplingArgs>();
  auto filtered = std::make_shared<std::string>();
  auto samples = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("probe", "before RL: pass@1 (greedy, sampled), pass@k and reward signal of a model on prompts");
  a->add_to(sub, "--k,-k", "samples per prompt (default 8)");
  sub->add_option("--write-filtered", *filtered, "write the prompts solved sometimes (neither always nor never) here");
  sub->add_option("--samples", *samples, "write every sample with its reward and pass here (JSONL)");
  return {sub, [a, filtered, samples] {
            std::vector<std::pair<std::string, Json>> flags;
            if (a->count >= 0) flags.emplace_back("k", a->count);
            if (!filtered->empty()) flags.emplace_back("write_filtered", *filtered);
            if (!samples->empty()) flags.emplace_back("samples", *samples);
            auto cfg = resolve<algo::ProbeConfig>(a->tree(flags, {"k", "greedy", "write_filtered", "samples"}));
            auto report = algo::run_probe(cfg);
            if (a->json) std::cout << report.to_json().dump(2) << "\n";
            else print_probe(report);
            return 0;
          }};
}

Command add_sample(CLI::App& app) {
  auto a = std::make_shared<SamplingArgs>();
  auto out = std::make_shared<std::string>();
  auto min_reward = std::make_shared<double>(NAN);
  auto* sub = app.add_subcommand("sample", "rejection sampling: the best of n samples per prompt, when its reward "
                                           "reaches a threshold, as SFT records");
  a->add_to(sub, "--n,-n", "samples per prompt (default 8)");
  sub->add_option("--min-reward", *min_reward, "the best sample's total reward must reach this (default 1.0)");
  sub->add_option("--out,-o", *out, "SFT records written here (JSONL)");
  return {sub, [a, out, min_reward] {
            std::vector<std::pair<std::string, Json>> flags;
            if (a->count >= 0) flags.emplace_back("n", a->count);
            if (!std::isnan(*min_reward)) flags.emplace_back("min_reward", *min_reward);
            if (!out->empty()) flags.emplace_back("out", *out);
            auto cfg = resolve<algo::SampleConfig>(a->tree(flags, {"n", "min_reward", "out"}));
            auto report = algo::run_sample(cfg);
            if (a->json) std::cout << report.to_json().dump(2) << "\n";
            else
              std::cout << "kept " << report.kept << " of " << report.prompts << " prompts (" << report.samples
                        << " samples; best reward mean " << fixed(report.best_reward_mean, 4) << ") -> " << cfg.out << "\n";
            return 0;
          }};
}

}  // namespace tune::cli

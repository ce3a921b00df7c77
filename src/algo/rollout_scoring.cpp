#include "tune/algo/rollout_scoring.h"

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::algo {

reward::Sample reward_sample(const rollout::RolloutPrompt& p, const rollout::SampleInfo& info) {
  reward::Sample s;
  for (auto it = p.messages.rbegin(); it != p.messages.rend(); ++it)
    if (it->role == "user") {
      s.prompt = it->content;
      break;
    }
  s.completion = info.text;
  s.reference = p.reference;
  s.metadata = p.metadata;
  s.completion_tokens = info.completion_length;
  s.truncated = info.truncated;
  if (!p.messages.empty()) s.messages = text::messages_to_json(p.messages);
  return s;
}

std::vector<reward::Sample> reward_samples(const std::vector<rollout::RolloutPrompt>& prompts,
                                           const rollout::RolloutBatch& batch) {
  std::vector<reward::Sample> out;
  out.reserve(batch.samples.size());
  for (const auto& info : batch.samples) out.push_back(reward_sample(prompts[static_cast<size_t>(info.prompt_index)], info));
  return out;
}

const reward::TermScores& pass_term(const reward::Scores& scores, const std::string& name) {
  TUNE_CHECK(!scores.terms.empty(), "no reward term to decide a pass");
  if (name.empty()) return scores.terms.front();
  std::vector<std::string> names;
  for (const auto& t : scores.terms) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  usage_fail("config error: pass_term: no reward term named '", name, "' (terms: ", join(names, ", "), ")");
}

std::vector<std::optional<bool>> passes(const reward::Scores& scores, const std::string& term, double threshold) {
  const auto& t = pass_term(scores, term);
  std::vector<std::optional<bool>> out;
  out.reserve(t.values.size());
  for (const auto& v : t.values) out.push_back(v ? std::optional<bool>(*v >= threshold) : std::nullopt);
  return out;
}

Json prompt_record(const rollout::RolloutPrompt& p) {
  Json rec = Json::object();
  if (p.messages.size() == 1 && p.messages.front().role == "user") rec["prompt"] = p.messages.front().content;
  else rec["messages"] = text::messages_to_json(p.messages);
  if (p.reference) rec["reference"] = *p.reference;
  for (auto it = p.metadata.begin(); it != p.metadata.end(); ++it)
    if (!rec.contains(it.key())) rec[it.key()] = it.value();
  return rec;
}

}  // namespace tune::algo

#pragma once
// How a rollout meets a reward: the reward's view of each sample, and which samples pass.
#include <optional>
#include <string>
#include <vector>

#include "tune/reward/reward.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/prompts.h"

namespace tune::algo {

// The sample as a reward sees it: the prompt is the last user message (what rule rewards and
// reward programs usually want), with the whole conversation in `messages`.
reward::Sample reward_sample(const rollout::RolloutPrompt& prompt, const rollout::SampleInfo& info);

// The reward samples of a rollout of `prompts` (row i's prompt: prompts[samples[i].prompt_index]).
std::vector<reward::Sample> reward_samples(const std::vector<rollout::RolloutPrompt>& prompts,
                                           const rollout::RolloutBatch& batch);

// The term that decides a pass: `name`, or the first term when it is empty. Throws a usage error
// naming the terms when there is none of that name.
const reward::TermScores& pass_term(const reward::Scores& scores, const std::string& name);

// Per sample: passed (the term's value >= threshold), failed, or not judged (nullopt).
std::vector<std::optional<bool>> passes(const reward::Scores& scores, const std::string& term, double threshold);

// The prompt record again (to write filtered prompt files): "prompt" for a single user turn, else
// "messages"; the reference and the record's other fields.
Json prompt_record(const rollout::RolloutPrompt& prompt);

}  // namespace tune::algo

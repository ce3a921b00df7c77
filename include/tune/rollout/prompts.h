#pragma once
// Prompts for rollouts: dataset records -> prompt conversations with a reference answer -> token
// ids rendered with the chat template (add_generation_prompt = true).
//
// Records taken (format "auto" decides per record by its fields):
//   RL prompt   {"prompt": "..." | [messages], "reference"|"answer"|"solution"|"ground_truth": ..., ...}
//               {"messages": [...], "answer": ...}       (a trailing assistant turn is the reference)
//   chat        messages / sharegpt / alpaca records: the conversation before its last assistant
//               turn is the prompt, that turn's content the reference
//   prompt/completion   the prompt; the completion's text is the reference
//   preference  the prompt; the chosen completion's text is the reference
// Any other field is kept as metadata (rewards see it). Text records have no prompt: an error.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/text/chat_mask.h"
#include "tune/text/dataset_format.h"
#include "tune/text/records.h"

namespace tune::rollout {

struct RolloutPrompt {
  std::vector<int32_t> ids;              // the rendered prompt's tokens (what the engine takes)
  std::vector<text::Message> messages;   // the prompt conversation (empty for a raw text prompt)
  std::optional<std::string> reference;  // the reference answer, when the record has one
  Json metadata = Json::object();        // the record's other fields
  std::string where;                     // "file:line" of the record
};

// One sample of any kind as an RL prompt sample (kind prompt). Throws tune::Error for a text
// sample or a conversation without an assistant turn to split off (naming sample.where).
text::Sample as_prompt_sample(text::Sample sample);

// Records -> prompt samples. `format` is a dataset format name or "auto"; `messages` records are
// read as RL prompts (see above). With skip_invalid, bad records are counted in records.skipped.
std::vector<text::Sample> prompt_samples(text::RecordSet& records, const std::string& format, const Json& field_map,
                                         bool skip_invalid);

// Renders a prompt sample with the masker's chat template.
RolloutPrompt render_prompt(const text::Sample& prompt_sample, const text::ChatMasker& masker);

struct PromptFileOptions {
  std::string format = "auto";
  Json field_map = Json::object();
  bool skip_invalid = false;
  int64_t max_records = 0;  // 0: all
};

// read_records + prompt_samples + render_prompt over a JSONL / JSON file.
std::vector<RolloutPrompt> load_prompts(const std::filesystem::path& path, const text::ChatMasker& masker,
                                        const PromptFileOptions& options = {});

// The token ids of each prompt, in order (the engine's input).
std::vector<std::vector<int32_t>> prompt_ids(const std::vector<RolloutPrompt>& prompts);

}  // namespace tune::rollout

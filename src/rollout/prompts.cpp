#include "tune/rollout/prompts.h"

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::rollout {
namespace {

// The text of a completion (its assistant messages joined).
std::string completion_text(const std::vector<text::Message>& messages) {
  std::string out;
  for (const auto& m : messages)
    if (m.role == "assistant") out += m.content;
  return out;
}

// The conversion; a problem is a RecordError (the caller adds the location or skips the record).
text::Sample to_prompt(text::Sample s) {
  switch (s.kind) {
    case text::SampleKind::prompt: return s;
    case text::SampleKind::chat: {
      size_t last = s.messages.size();
      while (last > 0 && s.messages[last - 1].role != "assistant") --last;
      if (last == 0) throw text::RecordError("a conversation without an assistant turn has no reference to split off");
      s.reference = s.messages[last - 1].content;
      s.messages.resize(last - 1);
      if (s.messages.empty()) throw text::RecordError("nothing precedes the last assistant turn, so there is no prompt");
      break;
    }
    case text::SampleKind::preference:
      s.reference = completion_text(s.chosen);
      s.chosen.clear();
      s.rejected.clear();
      s.margin.reset();
      break;
    case text::SampleKind::text:
      throw text::RecordError("a text record has no prompt (use prompt, messages or chat records)");
  }
  s.kind = text::SampleKind::prompt;
  return s;
}

}  // namespace

text::Sample as_prompt_sample(text::Sample s) {
  std::string where = s.where;
  try {
    return to_prompt(std::move(s));
  } catch (const text::RecordError& e) {
    fail(where, ": ", e.what());
  }
}

std::vector<text::Sample> prompt_samples(text::RecordSet& records, const std::string& format, const Json& field_map,
                                         bool skip_invalid) {
  std::vector<text::Sample> out;
  for (const auto& rec : records.records) {
    try {
      std::string fmt = format == "auto" ? text::detect_format(rec.value, field_map) : format;
      // A messages record may be a bare prompt (no assistant turn): the RL prompt reader takes both.
      if (fmt == "messages") fmt = "prompt";
      for (auto& s : text::convert_record(rec.value, fmt, field_map)) {
        s.where = rec.where;
        out.push_back(to_prompt(std::move(s)));
      }
    } catch (const text::RecordError& e) {
      if (!skip_invalid) fail(rec.where, ": ", e.what());
      ++records.skipped;
      if (records.skip_reasons.size() < 5) records.skip_reasons.push_back(str(rec.where, ": ", e.what()));
    }
  }
  return out;
}

RolloutPrompt render_prompt(const text::Sample& s, const text::ChatMasker& masker) {
  TUNE_CHECK(s.kind == text::SampleKind::prompt, s.where, ": render_prompt needs a prompt sample");
  RolloutPrompt p;
  p.ids = masker.prompt(s.messages).input_ids;
  if (p.ids.empty()) fail(s.where, ": the prompt renders to no tokens");
  p.messages = s.messages;
  p.reference = s.reference;
  p.metadata = s.metadata;
  p.where = s.where;
  return p;
}

std::vector<RolloutPrompt> load_prompts(const std::filesystem::path& path, const text::ChatMasker& masker,
                                        const PromptFileOptions& options) {
  text::ReadOptions read;
  read.skip_invalid = options.skip_invalid;
  read.max_records = options.max_records;
  text::RecordSet records = text::read_records(path, read);
  auto samples = prompt_samples(records, options.format, options.field_map, options.skip_invalid);
  if (records.skipped > 0)
    log::warn(path.string(), ": skipped ", records.skipped, " invalid records",
              records.skip_reasons.empty() ? std::string() : " (first: " + records.skip_reasons.front() + ")");
  std::vector<RolloutPrompt> out;
  out.reserve(samples.size());
  for (const auto& s : samples) out.push_back(render_prompt(s, masker));
  return out;
}

std::vector<std::vector<int32_t>> prompt_ids(const std::vector<RolloutPrompt>& prompts) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(prompts.size());
  for (const auto& p : prompts) out.push_back(p.ids);
  return out;
}

}  // namespace tune::rollout

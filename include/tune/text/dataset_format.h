#pragma once
// Dataset records -> samples. Each supported format becomes one of a few sample kinds:
//   chat        a conversation (alpaca, sharegpt, messages, prompt_completion); trained per mask mode
//   text        plain text, every token trained
//   preference  prompt messages + chosen / rejected completions (+ optional margin)
//   prompt      RL prompt messages + reference answer, nothing trained
// Torch-free.
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/text/records.h"

namespace tune::text {

struct Message {
  std::string role;     // system | user | assistant | tool | ... (passed to the chat template as is)
  std::string content;
  Json extra = Json::object();  // other keys of a messages-format message (tool_calls, reasoning_content, name)
};

enum class SampleKind { chat, text, preference, prompt };
const char* to_string(SampleKind kind);

struct Sample {
  SampleKind kind = SampleKind::chat;
  std::vector<Message> messages;   // chat: the conversation; preference / prompt: the prompt
  std::string text;                // text
  std::vector<Message> chosen;     // preference: the preferred completion (usually one assistant message)
  std::vector<Message> rejected;
  std::optional<double> margin;    // preference: how much better chosen is
  std::optional<std::string> reference;  // prompt: the reference answer
  Json metadata = Json::object();  // record fields not used for the conversation (difficulty, id, ...)
  std::string where;               // "file:line"
};

// Format names: alpaca | sharegpt | messages | prompt_completion | text | preference | prompt.
// "auto" picks by fields (see detect_format).
std::string detect_format(const Json& record, const Json& field_map);

// Converts one record; a record may yield several samples (a ranked list -> all pairs).
// Throws RecordError (no location) for a missing / mistyped field.
std::vector<Sample> convert_record(const Json& record, const std::string& format, const Json& field_map);

// Converts a whole record set; errors name the record's file:line. With skip_invalid, records that
// fail conversion are counted into `records.skipped` instead. "auto" is detected on the first record.
std::vector<Sample> convert_records(RecordSet& records, const std::string& format, const Json& field_map,
                                    bool skip_invalid);

// The messages as the chat template sees them: [{role, content, ...extra}].
Json messages_to_json(const std::vector<Message>& messages);

}  // namespace tune::text

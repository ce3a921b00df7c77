#include "tune/text/dataset_format.h"

#include <set>

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::text {

const char* to_string(SampleKind kind) {
  switch (kind) {
    case SampleKind::chat: return "chat";
    case SampleKind::text: return "text";
    case SampleKind::preference: return "preference";
    case SampleKind::prompt: return "prompt";
  }
  return "?";
}

namespace {

template <class... Args>
[[noreturn]] void record_fail(const Args&... args) {
  throw RecordError(::tune::str(args...));
}

// Field access through the user's field_map ({canonical: name in file}).
class Fields {
 public:
  Fields(const Json& record, const Json& field_map) : record_(record), map_(field_map) {}

  std::string name(const std::string& canonical) const {
    if (map_.is_object()) {
      auto it = map_.find(canonical);
      if (it != map_.end() && it->is_string()) return it->get<std::string>();
    }
    return canonical;
  }
  const Json* find(const std::string& canonical) {
    std::string key = name(canonical);
    used_.insert(key);
    auto it = record_.find(key);
    if (it == record_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const std::string& canonical) const {
    auto it = record_.find(name(canonical));
    return it != record_.end() && !it->is_null();
  }
  const Json& need(const std::string& canonical) {
    const Json* v = find(canonical);
    if (!v) record_fail("missing field '", name(canonical), "'");
    return *v;
  }
  std::string need_string(const std::string& canonical) {
    const Json& v = need(canonical);
    if (!v.is_string()) record_fail("field '", name(canonical), "' must be a string, got ", v.type_name());
    return v.get<std::string>();
  }
  std::string optional_string(const std::string& canonical) {
    const Json* v = find(canonical);
    if (!v) return "";
    if (!v->is_string()) record_fail("field '", name(canonical), "' must be a string, got ", v->type_name());
    return v->get<std::string>();
  }
  // Everything not consumed, for ordering by a field and for reports.
  Json rest() const {
    Json out = Json::object();
    for (auto it = record_.begin(); it != record_.end(); ++it)
      if (!used_.count(it.key())) out[it.key()] = it.value();
    return out;
  }

 private:
  const Json& record_;
  const Json& map_;
  std::set<std::string> used_;
};

// OpenAI content may be a list of parts; only text parts are supported.
std::string content_text(const Json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  if (content.is_array()) {
    std::string out;
    for (const auto& part : content) {
      if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string()) {
        out += part["text"].get<std::string>();
      } else {
        record_fail(where, ": only text content parts are supported");
      }
    }
    return out;
  }
  record_fail(where, " must be a string, got ", content.type_name());
}

std::string sharegpt_role(const std::string& from, const std::string& where) {
  static const std::pair<const char*, const char*> roles[] = {
      {"human", "user"},       {"user", "user"},         {"gpt", "assistant"}, {"assistant", "assistant"},
      {"model", "assistant"},  {"chatgpt", "assistant"}, {"bing", "assistant"}, {"bard", "assistant"},
      {"system", "system"},    {"tool", "tool"},         {"function", "tool"}, {"observation", "tool"},
      {"function_call", "assistant"}};
  for (const auto& [name, role] : roles)
    if (from == name) return role;
  record_fail(where, ": unknown speaker '", from, "' (expected human, gpt, system, tool, ...)");
}

// A list of {role, content} (or sharegpt {from, value}) messages.
std::vector<Message> read_messages(const Json& list, const std::string& field, Fields& f) {
  if (!list.is_array()) record_fail("field '", field, "' must be a list of messages, got ", list.type_name());
  std::vector<Message> out;
  std::string role_key = f.name("role"), content_key = f.name("content");
  std::string from_key = f.name("from"), value_key = f.name("value");
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& m = list[i];
    std::string where = str(field, "[", i, "]");
    if (!m.is_object()) record_fail(where, " must be an object, got ", m.type_name());
    Message msg;
    if (m.contains(role_key)) {
      if (!m[role_key].is_string()) record_fail(where, ".", role_key, " must be a string");
      msg.role = m[role_key].get<std::string>();
      if (!m.contains(content_key) && !m.contains("tool_calls")) record_fail(where, ": missing '", content_key, "'");
      msg.content = m.contains(content_key) ? content_text(m[content_key], where + "." + content_key) : "";
      for (auto it = m.begin(); it != m.end(); ++it)
        if (it.key() != role_key && it.key() != content_key) msg.extra[it.key()] = it.value();
    } else if (m.contains(from_key)) {
      if (!m[from_key].is_string()) record_fail(where, ".", from_key, " must be a string");
      msg.role = sharegpt_role(m[from_key].get<std::string>(), where);
      if (!m.contains(value_key)) record_fail(where, ": missing '", value_key, "'");
      msg.content = content_text(m[value_key], where + "." + value_key);
    } else {
      record_fail(where, ": a message needs '", role_key, "' and '", content_key, "' (or '", from_key, "' and '",
                  value_key, "')");
    }
    if (msg.role.empty()) record_fail(where, ": empty role");
    out.push_back(std::move(msg));
  }
  return out;
}

// A string becomes one message of `role`; a list is read as messages.
std::vector<Message> string_or_messages(const Json& v, const std::string& field, const std::string& role, Fields& f) {
  if (v.is_string()) return {Message{role, v.get<std::string>(), Json::object()}};
  if (v.is_array()) return read_messages(v, field, f);
  record_fail("field '", field, "' must be a string or a list of messages, got ", v.type_name());
}

bool has_assistant(const std::vector<Message>& messages) {
  for (const auto& m : messages)
    if (m.role == "assistant") return true;
  return false;
}

Sample alpaca(Fields& f) {
  Sample s;
  std::string system = f.optional_string("system");
  if (!system.empty()) s.messages.push_back({"system", system, Json::object()});
  if (const Json* history = f.find("history")) {
    if (!history->is_array()) record_fail("field '", f.name("history"), "' must be a list of [question, answer] pairs");
    for (size_t i = 0; i < history->size(); ++i) {
      const Json& turn = (*history)[i];
      if (!turn.is_array() || turn.size() != 2 || !turn[0].is_string() || !turn[1].is_string())
        record_fail("field '", f.name("history"), "[", i, "]' must be a [question, answer] pair of strings");
      s.messages.push_back({"user", turn[0].get<std::string>(), Json::object()});
      s.messages.push_back({"assistant", turn[1].get<std::string>(), Json::object()});
    }
  }
  std::string instruction = f.need_string("instruction");
  std::string input = f.optional_string("input");
  s.messages.push_back({"user", input.empty() ? instruction : instruction + "\n\n" + input, Json::object()});
  s.messages.push_back({"assistant", f.need_string("output"), Json::object()});
  return s;
}

Sample conversation(Fields& f, const std::string& field) {
  Sample s;
  std::string system = f.optional_string("system");
  if (!system.empty()) s.messages.push_back({"system", system, Json::object()});
  auto messages = read_messages(f.need(field), f.name(field), f);
  s.messages.insert(s.messages.end(), messages.begin(), messages.end());
  if (!has_assistant(s.messages)) record_fail("conversation has no assistant message");
  return s;
}

Sample prompt_completion(Fields& f) {
  Sample s;
  s.messages = string_or_messages(f.need("prompt"), f.name("prompt"), "user", f);
  auto completion = string_or_messages(f.need("completion"), f.name("completion"), "assistant", f);
  if (!has_assistant(completion)) record_fail("field '", f.name("completion"), "' has no assistant message");
  s.messages.insert(s.messages.end(), completion.begin(), completion.end());
  return s;
}

Sample text_sample(Fields& f) {
  Sample s;
  s.kind = SampleKind::text;
  s.text = f.need_string("text");
  if (s.text.empty()) record_fail("field '", f.name("text"), "' is empty");
  return s;
}

// Splits full conversations that share a prompt (no prompt field) at their first difference.
void split_implicit_prompt(Sample& s) {
  size_t common = 0;
  while (common < s.chosen.size() && common < s.rejected.size() && s.chosen[common].role == s.rejected[common].role &&
         s.chosen[common].content == s.rejected[common].content)
    ++common;
  if (common == 0) record_fail("chosen and rejected share no prompt and there is no prompt field");
  s.messages.assign(s.chosen.begin(), s.chosen.begin() + common);
  s.chosen.erase(s.chosen.begin(), s.chosen.begin() + common);
  s.rejected.erase(s.rejected.begin(), s.rejected.begin() + common);
}

std::vector<Sample> preference(Fields& f) {
  std::vector<Message> prompt;
  bool has_prompt = f.has("prompt");
  if (has_prompt) prompt = string_or_messages(f.need("prompt"), f.name("prompt"), "user", f);
  std::vector<Sample> out;
  if (f.has("chosen") || !(f.has("ranked") || f.has("responses"))) {
    Sample s;
    s.kind = SampleKind::preference;
    s.messages = prompt;
    const Json& chosen = f.need("chosen");
    const Json& rejected = f.need("rejected");
    if (!has_prompt && (chosen.is_string() || rejected.is_string()))
      record_fail("missing field '", f.name("prompt"), "' (chosen/rejected as strings need a prompt)");
    s.chosen = string_or_messages(chosen, f.name("chosen"), "assistant", f);
    s.rejected = string_or_messages(rejected, f.name("rejected"), "assistant", f);
    if (!has_prompt) split_implicit_prompt(s);
    if (const Json* margin = f.find("margin")) {
      if (!margin->is_number()) record_fail("field '", f.name("margin"), "' must be a number");
      s.margin = margin->get<double>();
    }
    if (s.chosen.empty() || s.rejected.empty()) record_fail("chosen and rejected must not be empty");
    out.push_back(std::move(s));
    return out;
  }
  std::string list_name = f.has("ranked") ? "ranked" : "responses";
  const Json& ranked = f.need(list_name);
  if (!ranked.is_array() || ranked.size() < 2)
    record_fail("field '", f.name(list_name), "' must be a list of at least 2 responses, best first");
  if (!has_prompt) record_fail("missing field '", f.name("prompt"), "'");
  const Json* scores = f.find("scores");
  if (scores && (!scores->is_array() || scores->size() != ranked.size()))
    record_fail("field '", f.name("scores"), "' must be a list of numbers, one per response");
  std::vector<std::vector<Message>> responses;
  for (size_t i = 0; i < ranked.size(); ++i)
    responses.push_back(string_or_messages(ranked[i], str(f.name(list_name), "[", i, "]"), "assistant", f));
  // Best first: every earlier response is preferred over every later one, k(k-1)/2 pairs.
  for (size_t i = 0; i < responses.size(); ++i) {
    for (size_t j = i + 1; j < responses.size(); ++j) {
      Sample s;
      s.kind = SampleKind::preference;
      s.messages = prompt;
      s.chosen = responses[i];
      s.rejected = responses[j];
      if (scores) {
        if (!(*scores)[i].is_number() || !(*scores)[j].is_number())
          record_fail("field '", f.name("scores"), "' must hold numbers");
        s.margin = (*scores)[i].get<double>() - (*scores)[j].get<double>();
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

Sample rl_prompt(Fields& f) {
  Sample s;
  s.kind = SampleKind::prompt;
  // The prompt is `prompt` (a string or messages) or, without one, a `messages` list.
  const std::string field = f.has("prompt") || !f.has("messages") ? "prompt" : "messages";
  s.messages = string_or_messages(f.need(field), f.name(field), "user", f);
  // A full conversation given as the prompt: the trailing assistant answer is the reference.
  std::optional<std::string> trailing;
  while (!s.messages.empty() && s.messages.back().role == "assistant") {
    trailing = s.messages.back().content;
    s.messages.pop_back();
  }
  if (s.messages.empty()) record_fail("field '", f.name(field), "' has no prompt message");
  s.reference = trailing;
  for (const char* key : {"answer", "reference", "solution", "ground_truth"}) {
    if (const Json* ref = f.find(key)) {
      if (ref->is_string()) s.reference = ref->get<std::string>();
      else if (ref->is_number() || ref->is_boolean()) s.reference = ref->dump();
      else record_fail("field '", f.name(key), "' must be a string or a number");
      break;
    }
  }
  return s;
}

}  // namespace

std::string detect_format(const Json& record, const Json& field_map) {
  Fields f(record, field_map);
  if (f.has("conversations")) return "sharegpt";
  if (f.has("messages")) return "messages";
  if ((f.has("chosen") && f.has("rejected")) || f.has("ranked") || f.has("responses")) return "preference";
  if (f.has("instruction") && f.has("output")) return "alpaca";
  if (f.has("prompt") && f.has("completion")) return "prompt_completion";
  if (f.has("text")) return "text";
  if (f.has("prompt")) return "prompt";
  std::vector<std::string> keys;
  for (auto it = record.begin(); it != record.end(); ++it) keys.push_back(it.key());
  record_fail("cannot tell the format from the fields {", join(keys, ", "),
              "}; set format (alpaca, sharegpt, messages, prompt_completion, text, preference, prompt) and field_map");
}

std::vector<Sample> convert_record(const Json& record, const std::string& format, const Json& field_map) {
  std::string fmt = format == "auto" ? detect_format(record, field_map) : format;
  Fields f(record, field_map);
  std::vector<Sample> out;
  if (fmt == "alpaca") out.push_back(alpaca(f));
  else if (fmt == "sharegpt") out.push_back(conversation(f, "conversations"));
  else if (fmt == "messages") out.push_back(conversation(f, "messages"));
  else if (fmt == "prompt_completion") out.push_back(prompt_completion(f));
  else if (fmt == "text") out.push_back(text_sample(f));
  else if (fmt == "preference") out = preference(f);
  else if (fmt == "prompt") out.push_back(rl_prompt(f));
  else throw UsageError(str("unknown dataset format '", fmt, "'"));
  Json rest = f.rest();
  for (auto& s : out) s.metadata = rest;
  return out;
}

std::vector<Sample> convert_records(RecordSet& records, const std::string& format, const Json& field_map,
                                    bool skip_invalid) {
  std::string fmt = format;
  std::vector<Sample> out;
  for (const auto& rec : records.records) {
    try {
      if (fmt == "auto") {
        fmt = detect_format(rec.value, field_map);
        log::debug(rec.where, ": detected format ", fmt);
      }
      for (auto& s : convert_record(rec.value, fmt, field_map)) {
        s.where = rec.where;
        out.push_back(std::move(s));
      }
    } catch (const RecordError& e) {
      if (!skip_invalid) fail(rec.where, ": ", e.what());
      ++records.skipped;
      if (records.skip_reasons.size() < 5) records.skip_reasons.push_back(str(rec.where, ": ", e.what()));
    }
  }
  return out;
}

Json messages_to_json(const std::vector<Message>& messages) {
  Json out = Json::array();
  for (const auto& m : messages) {
    Json j = Json::object();
    j["role"] = m.role;
    j["content"] = m.content;
    for (auto it = m.extra.begin(); it != m.extra.end(); ++it) j[it.key()] = it.value();
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace tune::text

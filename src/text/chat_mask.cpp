#include "tune/text/chat_mask.h"

#include <atomic>
#include <memory>

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::text {

RenderFn make_renderer(const ChatTemplate& chat_template, const Tokenizer& tokenizer, Json extra) {
  const auto& sp = tokenizer.special();
  Json base = extra.is_object() ? extra : Json::object();
  base["bos_token"] = sp.bos ? tokenizer.id_to_token(*sp.bos) : "";
  base["eos_token"] = sp.eos ? tokenizer.id_to_token(*sp.eos) : "";
  auto tmpl = std::make_shared<ChatTemplate>(chat_template);
  return [tmpl, base](const Json& messages, bool add_generation_prompt) {
    Json context = base;
    context["messages"] = messages;
    context["add_generation_prompt"] = add_generation_prompt;
    return tmpl->render(context);
  };
}

MaskMode parse_mask_mode(const std::string& name) {
  if (name == "assistant") return MaskMode::assistant;
  if (name == "all") return MaskMode::all;
  if (name == "last_turn") return MaskMode::last_turn;
  throw UsageError(str("unknown mask mode '", name, "' (assistant | all | last_turn)"));
}

int64_t TokenizedSample::num_labels() const {
  int64_t n = 0;
  for (int32_t l : labels) n += l != kIgnoreIndex;
  return n;
}

ChatMasker::ChatMasker(const Tokenizer& tokenizer, RenderFn render, MaskMode mode)
    : tokenizer_(tokenizer), render_(std::move(render)), mode_(mode) {}

namespace {

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

Json prefix_json(const std::vector<Message>& messages, size_t count) {
  return messages_to_json(std::vector<Message>(messages.begin(), messages.begin() + count));
}

std::atomic<bool> warned_not_append_only{false};

}  // namespace

bool ChatMasker::is_end_of_turn(int32_t id) const {
  const auto& sp = tokenizer_.special();
  if (sp.eos && *sp.eos == id) return true;
  for (int32_t s : sp.stop_ids)
    if (s == id) return true;
  return false;
}

// Tokenizes one piece and appends it. A trained piece keeps its labels up to its last end-of-turn
// token (eos / stop id; failing that, its last special token), so that template whitespace after
// the end-of-turn token is context, not target.
void ChatMasker::append(TokenizedSample& out, const std::string& text, bool train, bool trim) const {
  if (text.empty()) return;
  std::vector<int32_t> ids = tokenizer_.encode(text, false);
  size_t trained_end = train ? ids.size() : 0;
  if (train && trim) {
    size_t end_of_turn = ids.size(), last_special = ids.size();
    for (size_t k = ids.size(); k-- > 0;) {
      if (end_of_turn == ids.size() && is_end_of_turn(ids[k])) end_of_turn = k;
      if (last_special == ids.size() && tokenizer_.is_special(ids[k])) last_special = k;
    }
    if (end_of_turn < ids.size()) trained_end = end_of_turn + 1;
    else if (last_special < ids.size()) trained_end = last_special + 1;
  }
  for (size_t k = 0; k < ids.size(); ++k) {
    out.input_ids.push_back(ids[k]);
    out.labels.push_back(k < trained_end ? ids[k] : kIgnoreIndex);
  }
}

// The conversation cut into context and assistant pieces whose concatenation is the full render.
std::vector<ChatMasker::Piece> ChatMasker::pieces(const std::vector<Message>& messages) const {
  TUNE_CHECK(render_, "no chat template to render conversations with");
  std::vector<size_t> turns;
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role == "assistant") turns.push_back(i);
  std::string full = render_(messages_to_json(messages), false);
  if (turns.empty()) return {{full, false, false}};

  std::vector<Piece> out;
  std::string done;  // what the pieces so far cover
  bool append_only = true;
  if (mode_ != MaskMode::last_turn) {
    for (size_t t = 0; t < turns.size() && append_only; ++t) {
      std::string before = render_(prefix_json(messages, turns[t]), true);
      std::string with = render_(prefix_json(messages, turns[t] + 1), false);
      if (!starts_with(before, done) || !starts_with(with, before)) {
        append_only = false;
        break;
      }
      out.push_back({before.substr(done.size()), false, false});
      out.push_back({with.substr(before.size()), true, t + 1 == turns.size()});
      done = std::move(with);
    }
    if (append_only && starts_with(full, done)) {
      out.push_back({full.substr(done.size()), false, false});
      return out;
    }
    used_fallback_ = true;
    if (!warned_not_append_only.exchange(true))
      log::warn("the chat template re-renders earlier turns (not append-only, e.g. Qwen3 strips earlier "
                "<think> blocks): only the final assistant turn of multi-turn conversations is trained");
  }
  // Only the final assistant turn: everything before it is context.
  size_t last = turns.back();
  std::string before = render_(prefix_json(messages, last), true);
  std::string with = render_(prefix_json(messages, last + 1), false);
  if (!starts_with(with, before) || !starts_with(full, with))
    fail("chat template: rendering the conversation up to its last assistant message does not extend the "
         "prompt rendered with add_generation_prompt=true, so the assistant tokens cannot be located");
  out.clear();
  out.push_back({before, false, false});
  out.push_back({with.substr(before.size()), true, true});
  out.push_back({full.substr(with.size()), false, false});
  return out;
}

TokenizedSample ChatMasker::chat(const std::vector<Message>& messages) const {
  TokenizedSample out;
  for (const auto& piece : pieces(messages)) {
    bool train = mode_ == MaskMode::all || (piece.assistant && (mode_ == MaskMode::assistant || piece.last));
    append(out, piece.text, train, mode_ != MaskMode::all);
  }
  return out;
}

TokenizedSample ChatMasker::text(const std::string& text) const {
  TokenizedSample out;
  out.input_ids = tokenizer_.encode(text, true);
  const auto& eos = tokenizer_.special().eos;
  if (eos && (out.input_ids.empty() || out.input_ids.back() != *eos)) out.input_ids.push_back(*eos);
  out.labels = out.input_ids;
  return out;
}

TokenizedSample ChatMasker::prompt(const std::vector<Message>& messages) const {
  TUNE_CHECK(render_, "no chat template to render prompts with");
  TokenizedSample out;
  out.input_ids = tokenizer_.encode(render_(messages_to_json(messages), true), false);
  out.labels.assign(out.input_ids.size(), kIgnoreIndex);
  return out;
}

TokenizedPair ChatMasker::pair(const Sample& sample) const {
  TUNE_CHECK(sample.kind == SampleKind::preference, "pair() needs a preference sample");
  TUNE_CHECK(render_, "no chat template to render preference pairs with");
  std::string prompt = render_(messages_to_json(sample.messages), true);
  TokenizedPair out;
  TokenizedSample prompt_tokens;
  append(prompt_tokens, prompt, false, false);
  out.prompt_len = static_cast<int64_t>(prompt_tokens.input_ids.size());
  auto completion = [&](const std::vector<Message>& answer, const char* which) {
    std::vector<Message> all = sample.messages;
    all.insert(all.end(), answer.begin(), answer.end());
    std::string full = render_(messages_to_json(all), false);
    if (!starts_with(full, prompt))
      fail(sample.where, ": chat template: the ", which, " conversation does not extend the rendered prompt");
    TokenizedSample seq = prompt_tokens;
    append(seq, full.substr(prompt.size()), true, true);
    return seq;
  };
  out.chosen = completion(sample.chosen, "chosen");
  out.rejected = completion(sample.rejected, "rejected");
  if (sample.margin) {
    out.margin = *sample.margin;
    out.has_margin = true;
  }
  return out;
}

TokenizedSample ChatMasker::sample(const Sample& s) const {
  switch (s.kind) {
    case SampleKind::chat: return chat(s.messages);
    case SampleKind::text: return text(s.text);
    case SampleKind::prompt: return prompt(s.messages);
    case SampleKind::preference: break;
  }
  fail(s.where, ": a preference sample needs ChatMasker::pair()");
}

std::string show_masked(const Tokenizer& tokenizer, const TokenizedSample& sample) {
  std::string out;
  size_t i = 0, n = sample.input_ids.size();
  while (i < n) {
    bool trained = sample.labels[i] != kIgnoreIndex;
    size_t j = i;
    while (j < n && (sample.labels[j] != kIgnoreIndex) == trained) ++j;
    std::string text = tokenizer.decode(std::span<const int32_t>(sample.input_ids.data() + i, j - i), false);
    out += trained ? "[[" + text + "]]" : text;
    i = j;
  }
  return out;
}

}  // namespace tune::text

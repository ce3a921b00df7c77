#include "text/tokenizer_json.h"

#include <algorithm>
#include <cstring>

#include "text/unicode.h"
#include "tune/core/error.h"

namespace tune::text {

namespace {

bool is_word_char(char32_t cp) { return cp == '_' || unicode::is_alphanumeric(cp); }

char32_t codepoint_before(std::string_view text, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return unicode::next_codepoint(text, start);
}

std::unique_ptr<BpeModel> make_bpe(const pipeline::SpecJson& model, const std::string& source) {
  std::string type = model.value("type", "BPE");
  TUNE_CHECK(type == "BPE", source, ": unsupported model type '", type, "' (only BPE is implemented)");
  TUNE_CHECK(model.contains("vocab") && model["vocab"].is_object(), source, ": model.vocab must be an object");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(model["vocab"].size());
  for (auto& [token, id] : model["vocab"].items()) vocab.emplace(token, id.get<int32_t>());
  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges")) {
    const pipeline::SpecJson& list = model["merges"];
    merges.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const pipeline::SpecJson& m = list[i];
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t space = s.find(' ');
        TUNE_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, source,
                   ": model.merges[", i, "] '", s, "' is not two tokens separated by one space");
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail(source, ": model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]");
      }
    }
  }
  BpeOptions options;
  auto string_or_empty = [&](const char* key) {
    return model.contains(key) && model[key].is_string() ? model[key].get<std::string>() : std::string();
  };
  if (model.contains("unk_token") && model["unk_token"].is_string()) options.unk_token = model["unk_token"].get<std::string>();
  options.continuing_subword_prefix = string_or_empty("continuing_subword_prefix");
  options.end_of_word_suffix = string_or_empty("end_of_word_suffix");
  options.fuse_unk = model.value("fuse_unk", false);
  options.byte_fallback = model.value("byte_fallback", false);
  options.ignore_merges = model.value("ignore_merges", false);
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    float dropout = model["dropout"].get<float>();
    TUNE_CHECK(dropout == 0.0f, source, ": BPE dropout is not supported");
  }
  try {
    return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options));
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
}

}  // namespace

void JsonTokenizer::AddedMatcher::add(const AddedToken* token) {
  if (token->content.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(token->content[0])];
  bucket.push_back(token);
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
  ++count_;
}

std::vector<JsonTokenizer::AddedMatcher::Match> JsonTokenizer::AddedMatcher::find(std::string_view text) const {
  std::vector<Match> matches;
  if (count_ == 0) return matches;
  size_t previous_stop = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : bucket) {
      if (t->content.size() <= text.size() - pos &&
          std::memcmp(text.data() + pos, t->content.data(), t->content.size()) == 0) {
        hit = t;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + hit->content.size();
    pos = end;
    if (hit->single_word) {
      bool left_ok = begin == 0 || !is_word_char(codepoint_before(text, begin));
      size_t after = end;
      bool right_ok = end == text.size() || !is_word_char(unicode::next_codepoint(text, after));
      if (!left_ok || !right_ok) continue;
    }
    if (hit->lstrip) {
      size_t b = begin;
      while (b > previous_stop && unicode::is_whitespace(codepoint_before(text, b))) {
        --b;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
      }
      begin = std::max(b, previous_stop);
    }
    if (hit->rstrip) {
      while (end < text.size()) {
        size_t next = end;
        if (!unicode::is_whitespace(unicode::next_codepoint(text, next))) break;
        end = next;
      }
      pos = end;
    }
    matches.push_back({begin, end, hit->id});
    previous_stop = end;
  }
  return matches;
}

JsonTokenizer::JsonTokenizer(const pipeline::SpecJson& spec, const std::string& source) : source_(source) {
  TUNE_CHECK(spec.is_object(), source, ": expected a JSON object");
  TUNE_CHECK(spec.contains("model"), source, ": missing \"model\"");
  auto get = [&](const char* key) -> const pipeline::SpecJson& {
    static const pipeline::SpecJson null_json;
    auto it = spec.find(key);
    return it == spec.end() ? null_json : *it;
  };
  normalizer_ = pipeline::make_normalizer(get("normalizer"), source);
  pre_tokenizer_ = pipeline::make_pre_tokenizer(get("pre_tokenizer"), source);
  post_processor_ = pipeline::make_post_processor(get("post_processor"), source);
  decoder_ = pipeline::make_decoder(get("decoder"), source);
  model_ = make_bpe(spec["model"], source);
  vocab_size_ = model_->max_id() + 1;

  if (spec.contains("added_tokens") && spec["added_tokens"].is_array()) {
    for (const pipeline::SpecJson& t : spec["added_tokens"]) {
      AddedToken token;
      token.id = t.at("id").get<int32_t>();
      token.content = t.at("content").get<std::string>();
      token.single_word = t.value("single_word", false);
      token.lstrip = t.value("lstrip", false);
      token.rstrip = t.value("rstrip", false);
      token.normalized = t.value("normalized", !t.value("special", false));
      token.special = t.value("special", false);
      added_by_content_[token.content] = token.id;
      vocab_size_ = std::max(vocab_size_, token.id + 1);
      added_.push_back(std::move(token));
    }
  }
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_id_[added_[i].id] = i;
    AddedToken& token = added_[i];
    if (token.normalized) {
      if (normalizer_) {
        token.content = normalizer_->normalize(token.content);
        added_by_content_.try_emplace(token.content, token.id);
      }
      normalized_matcher_.add(&token);
    } else {
      raw_matcher_.add(&token);
    }
  }
}

void JsonTokenizer::encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& ids) const {
  std::string normalized = normalizer_ ? normalizer_->normalize(std::string(text)) : std::string(text);
  auto emit_text = [&](std::string_view part, bool part_at_start) {
    if (part.empty()) return;
    std::vector<pipeline::Piece> pieces{{std::string(part), part_at_start}};
    if (pre_tokenizer_) pre_tokenizer_->split(pieces);
    for (const auto& p : pieces) model_->tokenize(p.text, ids);
  };
  if (normalized_matcher_.empty()) {
    emit_text(normalized, at_start);
    return;
  }
  size_t last = 0;
  for (const auto& m : normalized_matcher_.find(normalized)) {
    if (m.begin > last) emit_text(std::string_view(normalized).substr(last, m.begin - last), at_start && last == 0);
    ids.push_back(m.id);
    last = m.end;
  }
  if (last < normalized.size()) emit_text(std::string_view(normalized).substr(last), at_start && last == 0);
}

std::vector<int32_t> JsonTokenizer::encode(std::string_view raw, bool add_special_tokens) const {
  std::string repaired;
  if (!unicode::is_valid_utf8(raw)) {
    repaired = unicode::to_valid_utf8(raw);
    raw = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(raw.size() / 3 + 4);
  size_t last = 0;
  for (const auto& m : raw_matcher_.find(raw)) {
    if (m.begin > last) encode_segment(raw.substr(last, m.begin - last), last == 0, ids);
    ids.push_back(m.id);
    last = m.end;
  }
  if (last < raw.size()) encode_segment(raw.substr(last), last == 0, ids);
  if (add_special_tokens) {
    if (post_processor_) post_processor_->process(ids);
    // tokenizer_config.json may ask for BOS/EOS that the template does not add.
    if (special_.add_bos && special_.bos && (ids.empty() || ids.front() != *special_.bos))
      ids.insert(ids.begin(), *special_.bos);
    if (special_.add_eos && special_.eos && (ids.empty() || ids.back() != *special_.eos))
      ids.push_back(*special_.eos);
  }
  return ids;
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> JsonTokenizer::template_ids() const {
  constexpr int32_t kProbe = -12345;  // stands for the sequence; no real id is negative
  std::vector<int32_t> ids{kProbe};
  if (post_processor_) post_processor_->process(ids);
  auto at = std::find(ids.begin(), ids.end(), kProbe);
  return {std::vector<int32_t>(ids.begin(), at), std::vector<int32_t>(at + 1, ids.end())};
}

std::string JsonTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) {
      const AddedToken& t = added_[added->second];
      if (skip_special_tokens && t.special) continue;
      tokens.push_back(t.content);
      continue;
    }
    if (const std::string* token = model_->id_to_token(id)) tokens.push_back(*token);
  }
  if (!decoder_) return join(tokens, " ");
  decoder_->decode(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<int32_t> JsonTokenizer::token_to_id(std::string_view token) const {
  auto it = added_by_content_.find(std::string(token));
  if (it != added_by_content_.end()) return it->second;
  return model_->token_to_id(token);
}

std::string JsonTokenizer::id_to_token(int32_t id) const {
  auto added = added_by_id_.find(id);
  if (added != added_by_id_.end()) return added_[added->second].content;
  const std::string* token = model_->id_to_token(id);
  return token ? *token : std::string();
}

bool JsonTokenizer::is_special(int32_t id) const {
  auto added = added_by_id_.find(id);
  return added != added_by_id_.end() && added_[added->second].special;
}

}  // namespace tune::text

#include "text/tokenizer_components.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "text/unicode.h"
#include "tune/core/error.h"

namespace tune::text::pipeline {

namespace {

using Range = std::pair<size_t, size_t>;

std::string type_of(const SpecJson& spec, const std::string& source, const char* what) {
  TUNE_CHECK(spec.is_object() && spec.contains("type") && spec["type"].is_string(), source, ": ", what,
             " without a \"type\"");
  return spec["type"].get<std::string>();
}

template <class T>
T value_or(const SpecJson& spec, const char* key, T fallback) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  return it->template get<T>();
}

// {"String": "..."} or {"Regex": "..."}: every occurrence as a byte range.
class Pattern {
 public:
  Pattern(const SpecJson& spec, const std::string& source) {
    if (spec.is_string()) {
      literal_ = spec.get<std::string>();
    } else if (spec.is_object() && spec.contains("String")) {
      literal_ = spec["String"].get<std::string>();
    } else if (spec.is_object() && spec.contains("Regex")) {
      regex_ = std::make_unique<unicode::Regex>(spec["Regex"].get<std::string>());
    } else {
      fail(source, ": pattern must be {\"String\": ...} or {\"Regex\": ...}, got ", spec.dump());
    }
  }
  std::vector<Range> find_all(std::string_view text) const {
    if (regex_) return regex_->find_all(text);
    std::vector<Range> out;
    if (literal_.empty()) return out;
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return out;
  }

 private:
  std::string literal_;
  std::unique_ptr<unicode::Regex> regex_;
};

std::string replace_all(std::string_view text, const std::vector<Range>& matches, std::string_view content) {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (auto [b, e] : matches) {
    out.append(text.substr(last, b - last));
    out.append(content);
    last = e;
  }
  out.append(text.substr(last));
  return out;
}

// ---- normalizers -------------------------------------------------------------------------------

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  std::string normalize(std::string text) const override { return unicode::normalize(text, form_); }

 private:
  unicode::NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode::lowercase(text); }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t pos = begin;
        if (!unicode::is_whitespace(unicode::next_codepoint(text, pos))) break;
        begin = pos;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        if (!unicode::is_whitespace(unicode::next_codepoint(text, pos))) break;
        end = start;
      }
    }
    return text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override { return text.empty() ? text : prefix_ + text; }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const SpecJson& pattern, std::string content, const std::string& source)
      : pattern_(pattern, source), content_(std::move(content)) {}
  std::string normalize(std::string text) const override {
    return replace_all(text, pattern_.find_all(text), content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string text) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// ---- pre-tokenizers ----------------------------------------------------------------------------

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const SpecJson& spec, const std::string& source) {
  std::string name = value_or<std::string>(spec, "behavior", "Isolated");
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  fail(source, ": unsupported split behavior '", name, "'");
}

// Cuts `piece` at `matches` following the reference's split-delimiter rules, appending to out.
void split_piece(const Piece& piece, const std::vector<Range>& matches, Behavior behavior, bool invert,
                 std::vector<Piece>& out) {
  const std::string& text = piece.text;
  std::vector<std::pair<Range, bool>> parts;  // (range, is_match), covering the whole text
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) parts.push_back({{last, b}, invert});
    parts.push_back({{b, e}, !invert});
    last = e;
  }
  if (last < text.size()) parts.push_back({{last, text.size()}, invert});

  std::vector<Range> kept;
  switch (behavior) {
    case Behavior::Removed:
      for (auto& [r, m] : parts)
        if (!m) kept.push_back(r);
      break;
    case Behavior::Isolated:
      for (auto& [r, m] : parts) kept.push_back(r);
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (auto& [r, m] : parts) {
        if (m && !previous_match && !kept.empty()) {
          kept.back().second = r.second;
        } else {
          kept.push_back(r);
        }
        previous_match = m;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        auto& [r, m] = *it;
        if (m && !previous_match && !kept.empty()) {
          kept.back().first = r.first;
        } else {
          kept.push_back(r);
        }
        previous_match = m;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
    case Behavior::Contiguous: {
      bool previous_match = false;
      for (auto& [r, m] : parts) {
        if (m == previous_match && !kept.empty()) {
          kept.back().second = r.second;
        } else {
          kept.push_back(r);
        }
        previous_match = m;
      }
      break;
    }
  }
  for (auto [b, e] : kept) {
    if (e > b) out.push_back({text.substr(b, e - b), piece.at_start && b == 0});
  }
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const SpecJson& spec, const std::string& source)
      : pattern_(spec.at("pattern"), source),
        behavior_(parse_behavior(spec, source)),
        invert_(value_or<bool>(spec, "invert", false)) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    for (const Piece& p : pieces) split_piece(p, pattern_.find_all(p.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// Characters matching a predicate, as single matches (individual) or contiguous runs.
template <class Predicate>
std::vector<Range> char_matches(std::string_view text, Predicate pred) {
  std::vector<Range> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t begin = pos;
    char32_t cp = unicode::next_codepoint(text, pos);
    if (pred(cp)) out.emplace_back(begin, pos);
  }
  return out;
}

class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& p : pieces) {
      auto matches = char_matches(p.text, unicode::is_digit_number);
      split_piece(p, matches, individual_ ? Behavior::Isolated : Behavior::Contiguous, false, out);
    }
    pieces = std::move(out);
  }

 private:
  bool individual_;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& p : pieces)
      split_piece(p, char_matches(p.text, unicode::is_whitespace), Behavior::Removed, false, out);
    pieces = std::move(out);
  }
};

class RegexSplitPreTokenizer : public PreTokenizer {
 public:
  RegexSplitPreTokenizer(const std::string& regex, Behavior behavior, bool invert)
      : regex_(regex), behavior_(behavior), invert_(invert) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& p : pieces) split_piece(p, regex_.find_all(p.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  unicode::Regex regex_;
  Behavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<unicode::Regex>(kGpt2Pattern);
  }
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (Piece& p : pieces) {
      if (add_prefix_space_ && !p.text.starts_with(' ')) p.text.insert(p.text.begin(), ' ');
      if (regex_) {
        split_piece(p, regex_->find_all(p.text), Behavior::Isolated, false, out);
      } else {
        out.push_back(std::move(p));
      }
    }
    for (Piece& p : out) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += unicode::byte_to_unicode(c);
      p.text = std::move(mapped);
    }
    pieces = std::move(out);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<unicode::Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

PrependScheme parse_prepend_scheme(const SpecJson& spec, const std::string& source) {
  if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
    std::string s = spec["prepend_scheme"].get<std::string>();
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    fail(source, ": unsupported Metaspace prepend_scheme '", s, "'");
  }
  return value_or<bool>(spec, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (Piece& p : pieces) {
      std::string text;
      text.reserve(p.text.size() + replacement_.size());
      for (char c : p.text) {
        if (c == ' ')
          text += replacement_;
        else
          text += c;
      }
      bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_start);
      if (prepend && !text.starts_with(replacement_)) text.insert(0, replacement_);
      Piece replaced{std::move(text), p.at_start};
      if (!split_) {
        if (!replaced.text.empty()) out.push_back(std::move(replaced));
        continue;
      }
      std::vector<Range> matches;
      size_t pos = 0;
      while ((pos = replaced.text.find(replacement_, pos)) != std::string::npos) {
        matches.emplace_back(pos, pos + replacement_.size());
        pos += replacement_.size();
      }
      split_piece(replaced, matches, Behavior::MergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// ---- post-processors ---------------------------------------------------------------------------

class NoopPostProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class TemplatePostProcessor : public PostProcessor {
 public:
  // prefix ids, then the sequence, then suffix ids.
  TemplatePostProcessor(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
    ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

std::unique_ptr<PostProcessor> make_template(const SpecJson& spec, const std::string& source) {
  const SpecJson& single = spec.at("single");
  std::map<std::string, std::vector<int32_t>> specials;
  if (spec.contains("special_tokens")) {
    for (auto& [name, token] : spec["special_tokens"].items())
      specials[name] = token.at("ids").get<std::vector<int32_t>>();
  }
  std::vector<int32_t> prefix, suffix;
  bool seen_sequence = false;
  for (const SpecJson& item : single) {
    if (item.contains("Sequence")) {
      std::string which = item["Sequence"].at("id").get<std::string>();
      TUNE_CHECK(which == "A" && !seen_sequence, source, ": TemplateProcessing single template must hold $A once");
      seen_sequence = true;
    } else if (item.contains("SpecialToken")) {
      std::string name = item["SpecialToken"].at("id").get<std::string>();
      auto it = specials.find(name);
      TUNE_CHECK(it != specials.end(), source, ": TemplateProcessing names unknown special token '", name, "'");
      auto& target = seen_sequence ? suffix : prefix;
      target.insert(target.end(), it->second.begin(), it->second.end());
    } else {
      fail(source, ": unsupported TemplateProcessing item ", item.dump());
    }
  }
  TUNE_CHECK(seen_sequence, source, ": TemplateProcessing single template lacks $A");
  return std::make_unique<TemplatePostProcessor>(std::move(prefix), std::move(suffix));
}

class SequencePostProcessor : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& step : steps_) step->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// ---- decoders ----------------------------------------------------------------------------------

class ByteLevelDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      size_t start = bytes.size();
      size_t pos = 0;
      bool all_mapped = true;
      while (pos < token.size()) {
        int b = unicode::unicode_to_byte(unicode::next_codepoint(token, pos));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes += static_cast<char>(b);
      }
      // A token with any character outside the alphabet is copied as it is.
      if (!all_mapped) {
        bytes.resize(start);
        bytes += token;
      }
    }
    tokens.assign(1, unicode::to_valid_utf8(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const SpecJson& pattern, std::string content, const std::string& source)
      : pattern_(pattern, source), content_(std::move(content)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = replace_all(t, pattern_.find_all(t), content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // bytes from consecutive <0xXX> tokens
    auto flush = [&] {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      unsigned value = 0;
      bool is_byte = t.size() == 6 && t.starts_with("<0x") && t.back() == '>' &&
                     std::from_chars(t.data() + 3, t.data() + 5, value, 16).ptr == t.data() + 5;
      if (is_byte) {
        pending += static_cast<char>(value);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      size_t pos = 0;
      while (pos < t.size()) {
        size_t b = pos;
        chars.emplace_back(b, unicode::next_codepoint(t, pos));
      }
      size_t cut_start = 0, cut_stop = 0;
      while (cut_start < start_ && cut_start < chars.size() && chars[cut_start].second == content_) ++cut_start;
      while (cut_stop < stop_ && cut_stop < chars.size() - cut_start &&
             chars[chars.size() - 1 - cut_stop].second == content_)
        ++cut_stop;
      size_t begin = cut_start < chars.size() ? chars[cut_start].first : t.size();
      size_t end = cut_stop > 0 ? chars[chars.size() - cut_stop].first : t.size();
      t = end > begin ? t.substr(begin, end - begin) : std::string();
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)), scheme_(scheme) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      // The first token loses every replacement character (the reference drops them, not just one).
      const bool drop = i == 0 && scheme_ != PrependScheme::Never;
      std::string out;
      const std::string& t = tokens[i];
      size_t pos = 0;
      while (pos < t.size()) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!drop) out += ' ';
          pos += replacement_.size();
        } else {
          out += t[pos++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

char32_t single_char(const SpecJson& value, const std::string& source, const char* what) {
  std::string s = value.get<std::string>();
  size_t pos = 0;
  TUNE_CHECK(!s.empty(), source, ": ", what, " must be one character");
  char32_t cp = unicode::next_codepoint(s, pos);
  TUNE_CHECK(pos == s.size(), source, ": ", what, " must be one character, got '", s, "'");
  return cp;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const SpecJson& spec, const std::string& source) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, source, "normalizer");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(value_or<bool>(spec, "strip_left", true),
                                             value_or<bool>(spec, "strip_right", true));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(spec.at("prepend").get<std::string>());
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(spec.at("pattern"), spec.at("content").get<std::string>(), source);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const SpecJson& s : spec.at("normalizers"))
      if (auto n = make_normalizer(s, source)) steps.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail(source, ": unsupported normalizer type '", type, "'");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const SpecJson& spec, const std::string& source) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, source, "pre_tokenizer");
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(spec, source);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(value_or<bool>(spec, "add_prefix_space", true),
                                                   value_or<bool>(spec, "use_regex", true));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePreTokenizer>(value_or<std::string>(spec, "replacement", "\xE2\x96\x81"),
                                                   parse_prepend_scheme(spec, source),
                                                   value_or<bool>(spec, "split", true));
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(value_or<bool>(spec, "individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Whitespace") return std::make_unique<RegexSplitPreTokenizer>(R"(\w+|[^\w\s]+)", Behavior::Removed, true);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const SpecJson& s : spec.at("pretokenizers"))
      if (auto p = make_pre_tokenizer(s, source)) steps.push_back(std::move(p));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail(source, ": unsupported pre_tokenizer type '", type, "'");
}

std::unique_ptr<PostProcessor> make_post_processor(const SpecJson& spec, const std::string& source) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, source, "post_processor");
  if (type == "ByteLevel") return std::make_unique<NoopPostProcessor>();  // only trims offsets
  if (type == "TemplateProcessing") return make_template(spec, source);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    int32_t cls = spec.at("cls").at(1).get<int32_t>(), sep = spec.at("sep").at(1).get<int32_t>();
    return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const SpecJson& s : spec.at("processors"))
      if (auto p = make_post_processor(s, source)) steps.push_back(std::move(p));
    return std::make_unique<SequencePostProcessor>(std::move(steps));
  }
  fail(source, ": unsupported post_processor type '", type, "'");
}

std::unique_ptr<Decoder> make_decoder(const SpecJson& spec, const std::string& source) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, source, "decoder");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(spec.at("pattern"), spec.at("content").get<std::string>(), source);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(single_char(spec.at("content"), source, "Strip content"),
                                          value_or<size_t>(spec, "start", 0), value_or<size_t>(spec, "stop", 0));
  if (type == "Metaspace")
    return std::make_unique<MetaspaceDecoder>(value_or<std::string>(spec, "replacement", "\xE2\x96\x81"),
                                              parse_prepend_scheme(spec, source));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const SpecJson& s : spec.at("decoders"))
      if (auto d = make_decoder(s, source)) steps.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail(source, ": unsupported decoder type '", type, "'");
}

}  // namespace tune::text::pipeline

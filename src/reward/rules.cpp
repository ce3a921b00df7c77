#include "tune/reward/rules.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "tune/core/error.h"

namespace tune::reward {

// ---- answer_match ----------------------------------------------------------------------------

AnswerMatch::AnswerMatch(AnswerMatchOptions options)
    : options_(std::move(options)),
      extract_(parse_extract(options_.extract)),
      reference_extract_(parse_extract(options_.reference_extract)),
      compare_(parse_compare(options_.compare)) {}

Score AnswerMatch::score_one(const Sample& s) const {
  if (!s.reference) return std::nullopt;  // nothing to compare with
  auto reference = extract_answer(*s.reference, reference_extract_, /*reference=*/true);
  if (!reference) return std::nullopt;
  auto answer = extract_answer(s.completion, extract_);
  if (!answer) return options_.no_answer;
  return answers_equal(*answer, *reference, compare_, options_.tolerance, options_.ignore_case) ? options_.correct
                                                                                                 : options_.incorrect;
}

std::vector<Score> AnswerMatch::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(score_one(s));
  return out;
}

// ---- format ----------------------------------------------------------------------------------

namespace {

// UTF-8 with Unicode classes (\w, \d as in Python's re). Invalid UTF-8 in a completion (a
// multi-byte character cut by the length limit) must not turn into a match error:
// PCRE2_MATCH_INVALID_UTF treats such bytes as never matching.
pcre2_code* compile(const std::string& pattern, uint32_t flags, std::string* problem) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | flags, &error, &offset, nullptr);
  if (!code && problem) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    *problem = str("is not a valid regular expression: ", reinterpret_cast<const char*>(message), " at offset ", offset);
  }
  return code;
}

}  // namespace

std::string regex_problem(const std::string& pattern) {
  if (pattern.empty()) return "must be set (a regular expression)";
  std::string problem;
  pcre2_code* code = compile(pattern, 0, &problem);
  if (code) pcre2_code_free(code);
  return problem;
}

struct Format::Impl {
  pcre2_code* code = nullptr;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

Format::Format(FormatOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  uint32_t flags = (options_.dotall ? PCRE2_DOTALL : 0) | (options_.multiline ? PCRE2_MULTILINE : 0);
  std::string problem;
  impl_->code = compile(options_.pattern, flags, &problem);
  if (!impl_->code) usage_fail("format reward: pattern '", options_.pattern, "' ", problem);
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // a speed-up when available, not required
}

Format::~Format() = default;

bool Format::matches(std::string_view text) const {
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  uint32_t flags = options_.full_match ? (PCRE2_ANCHORED | PCRE2_ENDANCHORED) : 0;
  int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, flags, data, nullptr);
  pcre2_match_data_free(data);
  if (rc >= 0) return true;
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(rc, message, sizeof(message));
  fail("format reward: pattern '", options_.pattern, "' failed: ", reinterpret_cast<const char*>(message));
}

std::vector<Score> Format::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(matches(s.completion) ? options_.match : options_.miss);
  return out;
}

// ---- length ----------------------------------------------------------------------------------

int64_t count_chars(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

Length::Length(LengthOptions options) : options_(std::move(options)) {
  if (options_.max <= 0) usage_fail("length reward: max must be > 0");
  if (options_.scale <= 0.0) options_.scale = static_cast<double>(options_.max);
}

double Length::value(int64_t length) const {
  if (length <= options_.max) return 0.0;
  return -std::min(options_.cap, static_cast<double>(length - options_.max) / options_.scale);
}

std::vector<Score> Length::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(value(options_.unit == "chars" ? count_chars(s.completion) : s.completion_tokens));
  return out;
}

// ---- repetition ------------------------------------------------------------------------------

namespace {

std::vector<std::string_view> units(std::string_view text, bool words) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    if (words) {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      size_t j = i;
      while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j > i) out.push_back(text.substr(i, j - i));
      i = j;
    } else {
      size_t j = i + 1;
      while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) ++j;
      out.push_back(text.substr(i, j - i));
      i = j;
    }
  }
  return out;
}

}  // namespace

Repetition::Repetition(RepetitionOptions options) : options_(std::move(options)) {
  if (options_.n <= 0) usage_fail("repetition reward: n must be > 0");
}

double Repetition::value(std::string_view text) const {
  auto u = units(text, options_.unit == "words");
  const size_t n = static_cast<size_t>(options_.n);
  if (u.size() < n) return 0.0;
  const size_t total = u.size() - n + 1;
  std::set<std::vector<std::string_view>> distinct;
  for (size_t i = 0; i < total; ++i) distinct.emplace(u.begin() + static_cast<std::ptrdiff_t>(i),
                                                      u.begin() + static_cast<std::ptrdiff_t>(i + n));
  return -options_.max_penalty * (1.0 - static_cast<double>(distinct.size()) / static_cast<double>(total));
}

std::vector<Score> Repetition::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(value(s.completion));
  return out;
}

// ---- overlong --------------------------------------------------------------------------------

Overlong::Overlong(OverlongOptions options) : options_(options) {
  if (options_.max_length <= 0 || options_.buffer <= 0 || options_.buffer > options_.max_length)
    usage_fail("overlong reward: needs 0 < buffer <= max_length (got buffer ", options_.buffer, ", max_length ",
               options_.max_length, ")");
}

double Overlong::value(int64_t tokens) const {
  const int64_t soft = options_.max_length - options_.buffer;
  if (tokens <= soft) return 0.0;
  if (tokens <= options_.max_length) return static_cast<double>(soft - tokens) / static_cast<double>(options_.buffer);
  return -1.0;
}

std::vector<Score> Overlong::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(value(s.completion_tokens));
  return out;
}

// ---- truncation ------------------------------------------------------------------------------

std::vector<Score> Truncation::score(std::span<const Sample> batch) {
  std::vector<Score> out;
  out.reserve(batch.size());
  for (const auto& s : batch) out.push_back(s.truncated ? options_.value : 0.0);
  return out;
}

}  // namespace tune::reward

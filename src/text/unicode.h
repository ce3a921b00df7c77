#pragma once
// UTF-8 helpers, Unicode normalization (utf8proc), the GPT-2 byte-level alphabet and a PCRE2
// regex wrapper: the text primitives the tokenizers are built from.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tune::text::unicode {

// Decodes the code point at text[pos] and advances pos; invalid bytes give U+FFFD and advance one.
char32_t next_codepoint(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t cp);
std::string utf8(char32_t cp);
// Length of the UTF-8 sequence starting with `lead` (1 for a stray continuation byte).
size_t utf8_length(unsigned char lead);
bool is_valid_utf8(std::string_view text);
// Replaces every invalid sequence with U+FFFD, as Rust's String::from_utf8_lossy does.
std::string to_valid_utf8(std::string_view bytes);
// Number of trailing bytes that start an incomplete (but so far valid) UTF-8 sequence.
size_t incomplete_utf8_tail(std::string_view text);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view text, NormalForm form);
std::string lowercase(std::string_view text);

// Rust char::is_whitespace (Unicode White_Space) and char::is_alphanumeric (L* or N*).
bool is_whitespace(char32_t cp);
bool is_alphanumeric(char32_t cp);
bool is_digit_number(char32_t cp);  // \p{N}

// GPT-2 byte-level alphabet: every byte gets a printable code point.
const std::string& byte_to_unicode(uint8_t byte);  // UTF-8 of the mapped code point
// Inverse map; -1 for a code point outside the alphabet.
int unicode_to_byte(char32_t cp);

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). Thread-safe for matching.
class Regex {
 public:
  explicit Regex(std::string_view pattern);  // throws tune::Error naming the pattern
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Every non-overlapping match as [begin, end) byte offsets, left to right. Empty matches are
  // skipped (the scan advances one character past them).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tune::text::unicode

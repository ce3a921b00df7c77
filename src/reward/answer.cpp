#include "tune/reward/answer.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::reward {

namespace {

constexpr std::string_view kUnicodeMinus = "\xE2\x88\x92";  // U+2212

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool digit_at(std::string_view s, size_t i) { return i < s.size() && is_digit(s[i]); }

size_t digit_run(std::string_view s, size_t i) {
  size_t j = i;
  while (digit_at(s, j)) ++j;
  return j - i;
}

// Length of a sign at i ("+", "-", U+2212), 0 when none.
size_t sign_length(std::string_view s, size_t i) {
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) return 1;
  if (s.substr(i).starts_with(kUnicodeMinus)) return kUnicodeMinus.size();
  return 0;
}

// The digits of a decimal at i: "1,234.50" -> int "1234", frac "50". Thousands commas must come
// in groups of exactly three after a first group of one to three digits. Returns the length read
// (0: no number). A period not followed by a digit is not part of the number.
size_t read_decimal(std::string_view s, size_t i, std::string& int_digits, std::string& frac_digits) {
  size_t j = i;
  int_digits.clear();
  frac_digits.clear();
  size_t run = digit_run(s, j);
  if (run > 0) {
    int_digits.append(s.substr(j, run));
    j += run;
    if (run <= 3)
      while (j + 3 < s.size() && s[j] == ',' && digit_run(s, j + 1) == 3) {
        int_digits.append(s.substr(j + 1, 3));
        j += 4;
      }
  }
  if (j < s.size() && s[j] == '.' && digit_at(s, j + 1)) {
    size_t frac = digit_run(s, j + 1);
    frac_digits.append(s.substr(j + 1, frac));
    j += 1 + frac;
  }
  return (int_digits.empty() && frac_digits.empty()) ? 0 : j - i;
}

// A number inside running text at i: sign, decimal, optional "/denominator". 0 when none.
size_t scan_number(std::string_view s, size_t i, bool allow_sign) {
  size_t j = i + (allow_sign ? sign_length(s, i) : 0);
  std::string a, b;
  size_t n = read_decimal(s, j, a, b);
  if (n == 0) return 0;
  j += n;
  if (j < s.size() && s[j] == '/' && digit_at(s, j + 1)) j += 1 + digit_run(s, j + 1);
  return j - i;
}

// Last case-insensitive occurrence of `needle` in `text`, npos when none.
size_t rfind_nocase(std::string_view text, std::string_view needle) {
  if (needle.size() > text.size()) return std::string_view::npos;
  for (size_t i = text.size() - needle.size() + 1; i-- > 0;) {
    bool same = true;
    for (size_t k = 0; k < needle.size() && same; ++k) same = lower(text[i + k]) == needle[k];
    if (same) return i;
  }
  return std::string_view::npos;
}

std::string trimmed(std::string_view s) { return std::string(trim(s)); }

// The braced argument starting at `open` (text[open] == '{'), nested braces matched and "\{" /
// "\}" skipped; nullopt when unbalanced.
std::optional<std::string> braced_at(std::string_view text, size_t open) {
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '{' || text[i + 1] == '}')) {
      ++i;
      continue;
    }
    if (c == '{') ++depth;
    if (c == '}' && --depth == 0) return std::string(text.substr(open + 1, i - open - 1));
  }
  return std::nullopt;
}

// "\boxed{...}" or "\fbox{...}" starting exactly at i.
std::optional<std::string> boxed_at(std::string_view text, size_t i) {
  for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    if (!text.substr(i).starts_with(cmd)) continue;
    size_t j = i + cmd.size();
    while (j < text.size() && text[j] == ' ') ++j;
    if (j >= text.size() || text[j] != '{') return std::nullopt;
    auto inner = braced_at(text, j);
    if (!inner) return std::nullopt;
    return trimmed(*inner);
  }
  return std::nullopt;
}

std::string strip_trailing_period(std::string s) {
  while (!s.empty() && (s.back() == '.' || s.back() == ' ')) s.pop_back();
  return s;
}

std::optional<std::string> non_empty(std::string s) {
  if (s.empty()) return std::nullopt;
  return s;
}

}  // namespace

Extract parse_extract(const std::string& name) {
  if (name == "auto") return Extract::automatic;
  if (name == "boxed") return Extract::boxed;
  if (name == "hash") return Extract::hash;
  if (name == "answer_is") return Extract::answer_is;
  if (name == "last_number") return Extract::last_number;
  if (name == "whole") return Extract::whole;
  usage_fail("unknown answer extraction '", name, "' (auto, boxed, hash, answer_is, last_number, whole)");
}

Compare parse_compare(const std::string& name) {
  if (name == "auto") return Compare::automatic;
  if (name == "exact") return Compare::exact;
  if (name == "numeric") return Compare::numeric;
  usage_fail("unknown answer comparison '", name, "' (auto, exact, numeric)");
}

std::optional<std::string> extract_boxed(std::string_view text) {
  // The last complete box wins; an unclosed one (a truncated completion) falls back to the one before.
  for (size_t i = text.size(); i-- > 0;)
    if (text[i] == '\\')
      if (auto inner = boxed_at(text, i)) return inner;
  return std::nullopt;
}

std::optional<std::string> extract_hash(std::string_view text) {
  size_t at = text.rfind("####");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(at + 4);
  rest = rest.substr(0, rest.find('\n'));
  return non_empty(strip_trailing_period(trimmed(rest)));
}

std::optional<std::string> extract_answer_is(std::string_view text) {
  size_t a = rfind_nocase(text, "answer is"), b = rfind_nocase(text, "answer:");
  size_t at;
  size_t skip;
  if (a != std::string_view::npos && (b == std::string_view::npos || a > b)) {
    at = a;
    skip = 9;
  } else if (b != std::string_view::npos) {
    at = b;
    skip = 7;
  } else {
    return std::nullopt;
  }
  std::string_view rest = text.substr(at + skip);
  size_t i = 0;
  while (i < rest.size() && (rest[i] == ' ' || rest[i] == ':' || rest[i] == '*' || rest[i] == '$' || rest[i] == '\t')) ++i;
  rest = rest.substr(i);
  if (auto boxed = boxed_at(rest, 0)) return non_empty(*boxed);
  if (size_t n = scan_number(rest, 0, true)) return std::string(rest.substr(0, n));
  // Not a number: the rest of the sentence.
  size_t end = rest.find('\n');
  for (size_t k = 0; k + 1 < rest.size() && k < end; ++k)
    if (rest[k] == '.' && (rest[k + 1] == ' ' || rest[k + 1] == '\n')) {
      end = k;
      break;
    }
  std::string answer = trimmed(rest.substr(0, end));
  while (!answer.empty() && (answer.back() == '.' || answer.back() == '*' || answer.back() == '$' || answer.back() == ' '))
    answer.pop_back();
  return non_empty(answer);
}

std::optional<std::string> extract_last_number(std::string_view text) {
  std::optional<std::string> last;
  size_t i = 0;
  while (i < text.size()) {
    // A sign only where it cannot be a binary minus ("3-5" holds 3 and 5, not -5).
    bool sign_ok = i == 0 || !(is_alnum(text[i - 1]) || text[i - 1] == ')' || text[i - 1] == '.');
    // A period right after a digit ends a sentence or a version part, it does not start ".5".
    bool dot_ok = text[i] != '.' || i == 0 || !is_digit(text[i - 1]);
    size_t n = dot_ok ? scan_number(text, i, sign_ok) : 0;
    if (n > 0) {
      last = std::string(text.substr(i, n));
      i += n;
    } else {
      ++i;
    }
  }
  return last;
}

std::optional<std::string> extract_answer(std::string_view text, Extract how, bool reference) {
  switch (how) {
    case Extract::boxed: return extract_boxed(text);
    case Extract::hash: return extract_hash(text);
    case Extract::answer_is: return extract_answer_is(text);
    case Extract::last_number: return extract_last_number(text);
    case Extract::whole: return non_empty(trimmed(text));
    case Extract::automatic: break;
  }
  if (auto a = extract_boxed(text)) return a;
  if (auto a = extract_hash(text)) return a;
  if (auto a = extract_answer_is(text)) return a;
  return reference ? non_empty(trimmed(text)) : extract_last_number(text);
}

namespace {

// Surrounding decoration of a written answer: spaces, "$" / "\$", "**", a final period, "%".
std::string_view undecorated(std::string_view s) {
  for (bool changed = true; changed;) {
    changed = false;
    s = trim(s);
    for (std::string_view p : {std::string_view("\\$"), std::string_view("$"), std::string_view("**")})
      if (s.starts_with(p)) {
        s.remove_prefix(p.size());
        changed = true;
      }
    for (std::string_view p : {std::string_view("\\%"), std::string_view("%"), std::string_view("$"),
                               std::string_view("**"), std::string_view(".")})
      if (s.ends_with(p)) {
        s.remove_suffix(p.size());
        changed = true;
      }
  }
  return s;
}

struct Signed {
  bool negative = false;
  std::string int_digits, frac_digits;
  double value() const {
    std::string text = (negative ? "-" : "") + (int_digits.empty() ? "0" : int_digits) +
                       (frac_digits.empty() ? "" : "." + frac_digits);
    double v = 0.0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
  }
};

// A whole signed decimal (spaces around allowed): "-1,234.5" -> true.
bool parse_signed(std::string_view s, Signed& out) {
  s = trim(s);
  size_t sign = sign_length(s, 0);
  out.negative = sign > 0 && s[0] != '+';
  size_t n = read_decimal(s, sign, out.int_digits, out.frac_digits);
  return n > 0 && sign + n == s.size();
}

std::optional<Number> fraction(const Signed& num, const Signed& den, bool negate) {
  double d = den.value();
  if (d == 0.0) return std::nullopt;
  Number out;
  out.value = (negate ? -1.0 : 1.0) * num.value() / d;
  return out;
}

}  // namespace

std::optional<Number> parse_number(std::string_view text) {
  std::string_view s = undecorated(text);
  if (s.empty()) return std::nullopt;
  // \frac{a}{b}, \dfrac, \tfrac, with an optional sign before.
  size_t sign = sign_length(s, 0);
  bool negate = sign > 0 && s[0] != '+';
  for (std::string_view cmd : {std::string_view("\\frac"), std::string_view("\\dfrac"), std::string_view("\\tfrac")}) {
    std::string_view rest = s.substr(sign);
    if (!rest.starts_with(cmd)) continue;
    size_t i = cmd.size();
    if (i >= rest.size() || rest[i] != '{') return std::nullopt;
    auto a = braced_at(rest, i);
    if (!a) return std::nullopt;
    i += a->size() + 2;
    if (i >= rest.size() || rest[i] != '{') return std::nullopt;
    auto b = braced_at(rest, i);
    if (!b || i + b->size() + 2 != rest.size()) return std::nullopt;
    Signed num, den;
    if (!parse_signed(*a, num) || !parse_signed(*b, den)) return std::nullopt;
    return fraction(num, den, negate);
  }
  Signed whole;
  size_t n = read_decimal(s, sign, whole.int_digits, whole.frac_digits);
  if (n == 0) return std::nullopt;
  whole.negative = negate;
  size_t i = sign + n;
  if (i == s.size()) {
    Number out;
    out.value = whole.value();
    out.integer = std::all_of(whole.frac_digits.begin(), whole.frac_digits.end(), [](char c) { return c == '0'; });
    if (out.integer) {
      std::string digits = whole.int_digits;
      digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size()));
      if (digits.empty()) digits = "0";
      out.digits = (negate && digits != "0" ? "-" : "") + digits;
    }
    return out;
  }
  if (s[i] == '/') {
    Signed den;
    if (!parse_signed(s.substr(i + 1), den)) return std::nullopt;
    return fraction(whole, den, false);
  }
  if (s[i] == 'e' || s[i] == 'E') {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    size_t exp = digit_run(s, j);
    if (exp == 0 || j + exp != s.size()) return std::nullopt;
    std::string clean = (negate ? "-" : "") + (whole.int_digits.empty() ? "0" : whole.int_digits) +
                        (whole.frac_digits.empty() ? "" : "." + whole.frac_digits) + "e" + std::string(s.substr(i + 1));
    Number out;
    auto [ptr, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), out.value);
    if (ec != std::errc() || !std::isfinite(out.value)) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

bool answers_equal(std::string_view answer, std::string_view reference, Compare how, double tolerance, bool ignore_case) {
  auto exact = [&] {
    std::string a = trimmed(answer), b = trimmed(reference);
    if (ignore_case) {
      std::transform(a.begin(), a.end(), a.begin(), lower);
      std::transform(b.begin(), b.end(), b.begin(), lower);
    }
    return a == b;
  };
  if (how == Compare::exact) return exact();
  auto a = parse_number(answer), b = parse_number(reference);
  if (!a || !b) return how == Compare::automatic && exact();
  if (a->integer && b->integer) return a->digits == b->digits;
  const double scale = std::max({1.0, std::fabs(a->value), std::fabs(b->value)});
  return std::fabs(a->value - b->value) <= tolerance * scale;
}

}  // namespace tune::reward

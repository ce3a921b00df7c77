#pragma once
// Final-answer extraction and comparison, for verifiable rewards (GSM8K / MATH style) and for
// counting "correct" in probes. Torch-free.
//
//   extract_answer("... so x = \\boxed{\\frac{3}{4}}.", Extract::automatic)  -> "\\frac{3}{4}"
//   answers_equal("0.75", "3/4", Compare::automatic)                        -> true
#include <optional>
#include <string>
#include <string_view>

namespace tune::reward {

enum class Extract {
  automatic,    // boxed, then hash, then answer_is, then last_number (a reference: then whole)
  boxed,        // the last complete \boxed{...} (or \fbox{...}), nested braces matched
  hash,         // the text after the last "####" to the end of its line (GSM8K)
  answer_is,    // after the last "answer is" / "answer:" (any case): a number there, or the rest of the line
  last_number,  // the last number in the text ("1,234", "-3/4", "2.5"; a sentence's period is not a decimal point)
  whole,        // the whole text, trimmed
};
Extract parse_extract(const std::string& name);  // "auto" | "boxed" | "hash" | "answer_is" | "last_number" | "whole"

std::optional<std::string> extract_boxed(std::string_view text);
std::optional<std::string> extract_hash(std::string_view text);
std::optional<std::string> extract_answer_is(std::string_view text);
std::optional<std::string> extract_last_number(std::string_view text);
// `reference`: the automatic chain ends with the whole text instead of the last number (a
// reference is usually the bare answer, or a worked solution ending in "#### N").
std::optional<std::string> extract_answer(std::string_view text, Extract how, bool reference = false);

// A number written as an answer: "42", "-1,234.50", "+.5", "3/4", "\frac{3}{4}", "\dfrac{-1}{2}",
// "1e-3", "$12", "12.", "50%", with surrounding spaces, '$' and a final period allowed. Thousands
// commas must group by three. U+2212 is a minus sign.
struct Number {
  double value = 0.0;
  bool integer = false;  // a whole number written in decimal ("5", "5.00"): compared digit by digit
  std::string digits;    // integer: canonical digits with sign ("-1234"), exact beyond double precision
};
std::optional<Number> parse_number(std::string_view text);

enum class Compare {
  automatic,  // numeric when both sides are numbers, else exact
  exact,      // equal after trimming
  numeric,    // both numbers, equal within tolerance (integers: exactly)
};
Compare parse_compare(const std::string& name);  // "auto" | "exact" | "numeric"

// numeric: |a - b| <= tolerance * max(1, |a|, |b|), or, when both are integers, the same digits.
bool answers_equal(std::string_view answer, std::string_view reference, Compare how, double tolerance = 1e-6,
                   bool ignore_case = false);

}  // namespace tune::reward

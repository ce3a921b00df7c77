#pragma once
// Rule rewards: each is a Reward built from an options struct whose `visit` declares its config
// keys (the `reward.terms[]` keys of its kind, see tune/reward/config.h). Torch-free.
//   answer_match  the extracted final answer equals the reference (null without a reference)
//   format        the completion matches a regex (PCRE2)
//   length        a penalty per unit past a threshold (tokens or characters)
//   repetition    a penalty for repeated n-grams (share of n-grams that are repeats)
//   overlong      DAPO's soft overlong penalty on the completion's token count
//   truncation    a fixed value for completions stopped by the length limit
#include <cstdint>
#include <memory>
#include <string>

#include "tune/core/config.h"
#include "tune/reward/answer.h"
#include "tune/reward/reward.h"

namespace tune::reward {

struct AnswerMatchOptions {
  std::string extract = "auto";            // from the completion
  std::string reference_extract = "auto";  // from the reference ("whole": use it as it is)
  std::string compare = "auto";
  double tolerance = 1e-6;
  bool ignore_case = false;
  double correct = 1.0;
  double incorrect = 0.0;
  double no_answer = 0.0;                  // nothing extracted from the completion
  template <class V>
  void visit(V& v) {
    const std::vector<std::string> ways = {"auto", "boxed", "hash", "answer_is", "last_number", "whole"};
    v("extract", extract, "auto | boxed | hash | answer_is | last_number | whole", config::one_of(ways));
    v("reference_extract", reference_extract, "how the reference's answer is found (auto ends with whole)",
      config::one_of(ways));
    v("compare", compare, "auto (numeric when both are numbers) | exact | numeric",
      config::one_of({"auto", "exact", "numeric"}));
    v("tolerance", tolerance, "numeric: relative tolerance (integers compare exactly)", config::at_least(0.0));
    v("ignore_case", ignore_case, "exact: compare case-insensitively");
    v("correct", correct, "value when the answer matches");
    v("incorrect", incorrect, "value when it does not");
    v("no_answer", no_answer, "value when no answer is found in the completion");
  }
};

class AnswerMatch : public Reward {
 public:
  explicit AnswerMatch(AnswerMatchOptions options);
  std::vector<Score> score(std::span<const Sample> batch) override;
  Score score_one(const Sample& sample) const;

 private:
  AnswerMatchOptions options_;
  Extract extract_, reference_extract_;
  Compare compare_;
};

// "" when `pattern` compiles as a PCRE2 pattern, else why not (for config checks).
std::string regex_problem(const std::string& pattern);

struct FormatOptions {
  std::string pattern;
  bool full_match = false;  // the whole completion must match (else: a match anywhere)
  bool dotall = true;       // '.' matches newlines too
  bool multiline = false;   // '^' / '$' match at every line
  double match = 1.0;
  double miss = 0.0;
  template <class V>
  void visit(V& v) {
    v("pattern", pattern, "PCRE2 regular expression the completion must match", config::Check<std::string>(regex_problem));
    v("full_match", full_match, "the whole completion must match (false: a match anywhere)");
    v("dotall", dotall, "'.' also matches newlines");
    v("multiline", multiline, "'^' and '$' match at line boundaries");
    v("match", match, "value when the completion matches");
    v("miss", miss, "value when it does not");
  }
};

class Format : public Reward {
 public:
  explicit Format(FormatOptions options);
  ~Format() override;
  std::vector<Score> score(std::span<const Sample> batch) override;
  bool matches(std::string_view text) const;

 private:
  struct Impl;
  FormatOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Unicode code points of UTF-8 text (a stray continuation byte is not counted).
int64_t count_chars(std::string_view text);

struct LengthOptions {
  std::string unit = "tokens";  // tokens: the completion's token count | chars: its code points
  int64_t max = 0;              // no penalty up to here
  double scale = 0.0;           // units past max that cost 1 (0: max)
  double cap = 1.0;             // the largest penalty
  template <class V>
  void visit(V& v) {
    v("unit", unit, "tokens | chars", config::one_of({"tokens", "chars"}));
    v("max", max, "length with no penalty", config::greater_than<int64_t>(0));
    v("scale", scale, "units past max that cost 1 (0: max)", config::at_least(0.0));
    v("cap", cap, "the largest penalty (the value is never below -cap)", config::greater_than(0.0));
  }
};

// 0 up to max, then -min(cap, (n - max) / scale).
class Length : public Reward {
 public:
  explicit Length(LengthOptions options);
  std::vector<Score> score(std::span<const Sample> batch) override;
  double value(int64_t length) const;

 private:
  LengthOptions options_;
};

struct RepetitionOptions {
  int64_t n = 3;              // n-gram size
  std::string unit = "words"; // words (split on whitespace) | chars (code points)
  double max_penalty = 1.0;   // the penalty when every n-gram is a repeat
  template <class V>
  void visit(V& v) {
    v("n", n, "n-gram size", config::greater_than<int64_t>(0));
    v("unit", unit, "words | chars", config::one_of({"words", "chars"}));
    v("max_penalty", max_penalty, "penalty when all n-grams are repeats", config::greater_than(0.0));
  }
};

// -max_penalty * (1 - distinct n-grams / n-grams); 0 for a text shorter than n units.
class Repetition : public Reward {
 public:
  explicit Repetition(RepetitionOptions options);
  std::vector<Score> score(std::span<const Sample> batch) override;
  double value(std::string_view text) const;

 private:
  RepetitionOptions options_;
};

struct OverlongOptions {
  int64_t max_length = 0;  // L_max: the generation limit
  int64_t buffer = 0;      // L_c: the soft zone before it
  template <class V>
  void visit(V& v) {
    v("max_length", max_length, "L_max, tokens (usually max_new_tokens)", config::greater_than<int64_t>(0));
    v("buffer", buffer, "L_c, tokens before max_length where the penalty ramps from 0 to -1",
      config::Check<int64_t>([this](const int64_t& b) {
        return b > 0 && b <= max_length ? std::string() : str("must be in [1, max_length = ", max_length, "]");
      }));
  }
};

// DAPO: 0 when |y| <= L_max - L_c; ((L_max - L_c) - |y|) / L_c up to L_max; -1 beyond.
class Overlong : public Reward {
 public:
  explicit Overlong(OverlongOptions options);
  std::vector<Score> score(std::span<const Sample> batch) override;
  double value(int64_t tokens) const;

 private:
  OverlongOptions options_;
};

struct TruncationOptions {
  double value = -1.0;
  template <class V>
  void visit(V& v) {
    v("value", value, "value of a truncated completion (others: 0)");
  }
};

class Truncation : public Reward {
 public:
  explicit Truncation(TruncationOptions options) : options_(options) {}
  std::vector<Score> score(std::span<const Sample> batch) override;

 private:
  TruncationOptions options_;
};

}  // namespace tune::reward

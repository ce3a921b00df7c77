// Rule rewards on tricky inputs: regex format (anchoring, newlines, invalid UTF-8), length
// penalty past a threshold (tokens and code points), n-gram repetition, DAPO's soft overlong
// penalty at its boundaries, truncation.
#include <gtest/gtest.h>

#include "tune/reward/rules.h"

namespace tune::reward {
namespace {

Sample text(std::string completion, int64_t tokens = 0, bool truncated = false) {
  Sample s;
  s.completion = std::move(completion);
  s.completion_tokens = tokens;
  s.truncated = truncated;
  return s;
}

FormatOptions pattern(std::string p) {
  FormatOptions o;
  o.pattern = std::move(p);
  return o;
}

TEST(FormatReward, SearchFullMatchAndFlags) {
  Format digits(pattern("^\\d+$"));
  EXPECT_TRUE(digits.matches("12345"));
  EXPECT_FALSE(digits.matches("12a45"));
  EXPECT_FALSE(digits.matches(""));
  EXPECT_FALSE(digits.matches("12\n34"));  // one line only: ^ and $ are the text's ends

  // The think/answer format: '.' crosses newlines by default (dotall).
  Format tags(pattern("^<think>.*?</think>\\s*<answer>.*?</answer>$"));
  EXPECT_TRUE(tags.matches("<think>a\nb</think>\n<answer>4</answer>"));
  EXPECT_FALSE(tags.matches("<answer>4</answer>"));
  auto o = pattern("^<think>.*?</think>\\s*<answer>.*?</answer>$");
  o.dotall = false;
  EXPECT_FALSE(Format(o).matches("<think>a\nb</think>\n<answer>4</answer>"));

  // full_match anchors both ends without ^$ in the pattern; search finds it anywhere.
  auto full = pattern("\\d+");
  full.full_match = true;
  EXPECT_TRUE(Format(full).matches("123"));
  EXPECT_FALSE(Format(full).matches("x123"));
  EXPECT_TRUE(Format(pattern("\\d+")).matches("x123"));

  auto lines = pattern("^answer: \\d+$");
  lines.multiline = true;
  EXPECT_TRUE(Format(lines).matches("thinking\nanswer: 5\n"));
  EXPECT_FALSE(Format(pattern("^answer: \\d+$")).matches("thinking\nanswer: 5\n"));

  // Unicode classes, and bytes that are not UTF-8 (a character cut by the length limit) do not throw.
  EXPECT_TRUE(Format(pattern("^\\w+$")).matches("caf\xC3\xA9"));
  EXPECT_TRUE(Format(pattern("ok")).matches("ok \xE2\x82"));
  EXPECT_FALSE(Format(pattern("^ok$")).matches("ok\xFF"));

  auto valued = pattern("^\\d+$");
  valued.match = 0.5;
  valued.miss = -0.5;
  Format r(valued);
  std::vector<Sample> batch = {text("12"), text("twelve")};
  auto s = r.score(batch);
  EXPECT_EQ(s[0], 0.5);
  EXPECT_EQ(s[1], -0.5);
}

TEST(FormatReward, BadPatternsAreUsageErrors) {
  EXPECT_EQ(regex_problem("a+"), "");
  EXPECT_NE(regex_problem("(unclosed").find("missing closing parenthesis"), std::string::npos) << regex_problem("(unclosed");
  EXPECT_NE(regex_problem(""), "");
  EXPECT_THROW(Format(pattern("[z-a]")), UsageError);
}

TEST(LengthReward, PenaltyPastThresholdCappedInTokensOrChars) {
  LengthOptions o;
  o.max = 100;
  Length tokens(o);
  EXPECT_EQ(tokens.value(0), 0.0);
  EXPECT_EQ(tokens.value(100), 0.0);
  EXPECT_DOUBLE_EQ(tokens.value(150), -0.5);  // scale defaults to max
  EXPECT_DOUBLE_EQ(tokens.value(200), -1.0);
  EXPECT_DOUBLE_EQ(tokens.value(1000), -1.0);  // capped
  o.scale = 10;
  o.cap = 3;
  EXPECT_DOUBLE_EQ(Length(o).value(115), -1.5);
  EXPECT_DOUBLE_EQ(Length(o).value(1000), -3.0);

  LengthOptions c;
  c.unit = "chars";
  c.max = 3;
  c.scale = 1;
  c.cap = 100;
  Length chars(c);
  // "héllo" is 5 code points (6 bytes); the token count is ignored in chars mode.
  std::vector<Sample> batch = {text("h\xC3\xA9llo", 999), text("abc", 999), text("", 0)};
  auto s = chars.score(batch);
  EXPECT_DOUBLE_EQ(*s[0], -2.0);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_EQ(s[2], 0.0);
  std::vector<Sample> by_tokens = {text("short", 150)};
  EXPECT_DOUBLE_EQ(*tokens.score(by_tokens)[0], -0.5);
  EXPECT_EQ(count_chars("\xE4\xB8\xAD\xE6\x96\x87"), 2);
}

TEST(RepetitionReward, ShareOfRepeatedNgrams) {
  RepetitionOptions o;  // word trigrams
  Repetition r(o);
  EXPECT_EQ(r.value("the cat sat on the mat"), 0.0);  // 4 trigrams, all distinct
  // "a b a b a b": trigrams aba bab aba bab -> 2 distinct of 4 -> -0.5.
  EXPECT_DOUBLE_EQ(r.value("a b a b a b"), -0.5);
  // A word loop: 10 x "go", 8 trigrams, 1 distinct.
  EXPECT_DOUBLE_EQ(r.value("go go go go go go go go go go"), -(1.0 - 1.0 / 8.0));
  EXPECT_EQ(r.value("too short"), 0.0);  // fewer words than n
  EXPECT_EQ(r.value(""), 0.0);
  EXPECT_DOUBLE_EQ(r.value("a  b\n a\tb a b"), -0.5);  // any whitespace separates words

  RepetitionOptions chars;
  chars.unit = "chars";
  chars.n = 2;
  chars.max_penalty = 0.2;
  // "ééé": bigrams éé éé -> 1 distinct of 2; code points, not bytes.
  EXPECT_DOUBLE_EQ(Repetition(chars).value("\xC3\xA9\xC3\xA9\xC3\xA9"), -0.1);
}

TEST(OverlongReward, DapoSoftPenaltyAtItsBoundaries) {
  OverlongOptions o;
  o.max_length = 20;
  o.buffer = 4;
  Overlong r(o);
  EXPECT_EQ(r.value(0), 0.0);
  EXPECT_EQ(r.value(16), 0.0);  // L_max - L_c
  EXPECT_DOUBLE_EQ(r.value(17), -0.25);
  EXPECT_DOUBLE_EQ(r.value(18), -0.5);
  EXPECT_DOUBLE_EQ(r.value(20), -1.0);  // L_max
  EXPECT_DOUBLE_EQ(r.value(21), -1.0);  // beyond
  std::vector<Sample> batch = {text("x", 10), text("y", 19)};
  auto s = r.score(batch);
  EXPECT_EQ(s[0], 0.0);
  EXPECT_DOUBLE_EQ(*s[1], -0.75);
  o.buffer = 21;
  EXPECT_THROW(Overlong{o}, UsageError);
}

TEST(TruncationReward, FixedValueForTruncated) {
  Truncation r(TruncationOptions{-2.0});
  std::vector<Sample> batch = {text("a", 5, true), text("b", 5, false)};
  auto s = r.score(batch);
  EXPECT_EQ(s[0], -2.0);
  EXPECT_EQ(s[1], 0.0);
}

}  // namespace
}  // namespace tune::reward

// Answer extraction and comparison on tricky strings: nested / unclosed boxes, GSM8K "####",
// "The answer is", the last number (commas, signs, decimals, fractions, a sentence's period),
// and numeric equality (integers exact beyond double precision, fractions vs decimals).
#include <gtest/gtest.h>

#include "tune/reward/answer.h"
#include "tune/reward/rules.h"

namespace tune::reward {
namespace {

std::string opt(const std::optional<std::string>& s) { return s ? *s : "<none>"; }

TEST(ExtractBoxed, NestedBracesAndTheLastCompleteBox) {
  EXPECT_EQ(opt(extract_boxed("so \\boxed{42}.")), "42");
  EXPECT_EQ(opt(extract_boxed("\\boxed{\\frac{1}{2}}")), "\\frac{1}{2}");
  EXPECT_EQ(opt(extract_boxed("\\boxed{ {a}{b{c}} }")), "{a}{b{c}}");
  EXPECT_EQ(opt(extract_boxed("first \\boxed{1} then \\boxed{2}")), "2");
  // A truncated last box falls back to the complete one before it.
  EXPECT_EQ(opt(extract_boxed("\\boxed{7} and finally \\boxed{\\frac{3}{4")), "7");
  EXPECT_EQ(opt(extract_boxed("\\boxed{\\{1, 2\\}}")), "\\{1, 2\\}");  // escaped braces do not nest
  EXPECT_EQ(opt(extract_boxed("\\fbox{x}")), "x");
  EXPECT_EQ(opt(extract_boxed("\\boxed {5}")), "5");
  EXPECT_EQ(opt(extract_boxed("no box here {5}")), "<none>");
  EXPECT_EQ(opt(extract_boxed("\\boxedfoo{5}")), "<none>");
  EXPECT_EQ(opt(extract_boxed("\\boxed{unclosed")), "<none>");
}

TEST(ExtractHash, RestOfTheLastHashLine) {
  EXPECT_EQ(opt(extract_hash("Natalia sold 48/2 = 24 clips.\n#### 72")), "72");
  EXPECT_EQ(opt(extract_hash("#### 1,234.\nmore text")), "1,234");
  EXPECT_EQ(opt(extract_hash("#### 1\n#### 2")), "2");
  EXPECT_EQ(opt(extract_hash("#### \n")), "<none>");
  EXPECT_EQ(opt(extract_hash("no hash")), "<none>");
}

TEST(ExtractAnswerIs, NumberOrRestOfSentence) {
  EXPECT_EQ(opt(extract_answer_is("The answer is 42.")), "42");
  EXPECT_EQ(opt(extract_answer_is("the answer is: -3/4 of the cake")), "-3/4");
  EXPECT_EQ(opt(extract_answer_is("So the final answer is $\\boxed{12}$.")), "12");
  EXPECT_EQ(opt(extract_answer_is("THE ANSWER IS **1,000**")), "1,000");
  EXPECT_EQ(opt(extract_answer_is("Answer: Paris. It is the capital.")), "Paris");
  EXPECT_EQ(opt(extract_answer_is("The answer is 3 but wait, the answer is 5")), "5");
  EXPECT_EQ(opt(extract_answer_is("answer is\n")), "<none>");
  EXPECT_EQ(opt(extract_answer_is("I have no idea")), "<none>");
}

TEST(ExtractLastNumber, CommasSignsDecimalsFractionsPeriods) {
  EXPECT_EQ(opt(extract_last_number("3 apples and 4 pears make 7.")), "7");
  EXPECT_EQ(opt(extract_last_number("total: 1,234,567 dollars")), "1,234,567");
  EXPECT_EQ(opt(extract_last_number("it is -12.5 degrees")), "-12.5");
  EXPECT_EQ(opt(extract_last_number("half is 1/2")), "1/2");
  EXPECT_EQ(opt(extract_last_number("x = 10 - 3")), "3");   // a minus and a space: no sign
  EXPECT_EQ(opt(extract_last_number("10-3")), "3");         // binary minus: 3, not -3
  EXPECT_EQ(opt(extract_last_number("a list 1,2,3")), "3");  // not thousands groups
  EXPECT_EQ(opt(extract_last_number("costs $5.")), "5");
  EXPECT_EQ(opt(extract_last_number("pi is .5 more")), ".5");
  EXPECT_EQ(opt(extract_last_number("version 1.2.3")), "3");
  EXPECT_EQ(opt(extract_last_number("\xE2\x88\x92" "4 below")), "\xE2\x88\x92" "4");  // U+2212 minus
  EXPECT_EQ(opt(extract_last_number("no digits at all.")), "<none>");
  EXPECT_EQ(opt(extract_last_number("")), "<none>");
}

TEST(ExtractAnswer, AutomaticChainAndReferences) {
  EXPECT_EQ(opt(extract_answer("#### 5 but \\boxed{6}", Extract::automatic)), "6");  // boxed first
  EXPECT_EQ(opt(extract_answer("steps 1 2 3\n#### 9", Extract::automatic)), "9");
  EXPECT_EQ(opt(extract_answer("so the answer is 8, not 9", Extract::automatic)), "8");
  EXPECT_EQ(opt(extract_answer("it must be 11 or 12", Extract::automatic)), "12");
  // A reference falls back to its whole text, a completion to its last number.
  EXPECT_EQ(opt(extract_answer(" Paris 2 ", Extract::automatic, true)), "Paris 2");
  EXPECT_EQ(opt(extract_answer(" Paris 2 ", Extract::automatic, false)), "2");
  EXPECT_EQ(opt(extract_answer("  ", Extract::whole)), "<none>");
  EXPECT_THROW(parse_extract("first_number"), UsageError);
}

TEST(ParseNumber, FormsOfOneNumber) {
  auto v = [](std::string_view s) { auto n = parse_number(s); return n ? n->value : -999.0; };
  EXPECT_DOUBLE_EQ(v("42"), 42);
  EXPECT_DOUBLE_EQ(v(" -1,234.50 "), -1234.5);
  EXPECT_DOUBLE_EQ(v("+.5"), 0.5);
  EXPECT_DOUBLE_EQ(v("3/4"), 0.75);
  EXPECT_DOUBLE_EQ(v("-3/4"), -0.75);
  EXPECT_DOUBLE_EQ(v("\\frac{3}{4}"), 0.75);
  EXPECT_DOUBLE_EQ(v("\\dfrac{-1}{2}"), -0.5);
  EXPECT_DOUBLE_EQ(v("-\\frac{1}{4}"), -0.25);
  EXPECT_DOUBLE_EQ(v("1e-3"), 0.001);
  EXPECT_DOUBLE_EQ(v("$12"), 12);
  EXPECT_DOUBLE_EQ(v("\\$12.50"), 12.5);
  EXPECT_DOUBLE_EQ(v("12."), 12);
  EXPECT_DOUBLE_EQ(v("50%"), 50);
  EXPECT_DOUBLE_EQ(v("**7**"), 7);
  EXPECT_DOUBLE_EQ(v("\xE2\x88\x92" "2"), -2);
  for (std::string_view bad : {"", "abc", "1,23", "12,3456", "1/0", "3/", "1.2.3", "5 apples", "\\frac{1}", "--5", "1e", "x1"})
    EXPECT_FALSE(parse_number(bad)) << bad;
  auto n = parse_number("007.000");
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->integer);
  EXPECT_EQ(n->digits, "7");
  EXPECT_EQ(parse_number("-0")->digits, "0");
  EXPECT_FALSE(parse_number("0.5")->integer);
  EXPECT_FALSE(parse_number("4/2")->integer);
}

TEST(AnswersEqual, NumericExactAndAutomatic) {
  EXPECT_TRUE(answers_equal("1,000", "1000", Compare::numeric));
  EXPECT_TRUE(answers_equal("0.75", "3/4", Compare::numeric));
  EXPECT_TRUE(answers_equal("\\frac{3}{4}", "0.75", Compare::automatic));
  EXPECT_TRUE(answers_equal("5.00", "5", Compare::numeric));
  EXPECT_TRUE(answers_equal("+5", "5.", Compare::numeric));
  EXPECT_FALSE(answers_equal("-5", "5", Compare::numeric));
  EXPECT_FALSE(answers_equal("0.33", "1/3", Compare::numeric));
  EXPECT_TRUE(answers_equal("0.3333333", "1/3", Compare::numeric));      // within 1e-6
  EXPECT_FALSE(answers_equal("0.3333333", "1/3", Compare::numeric, 0));  // tolerance 0
  // Integers compare digit by digit, beyond double precision (these two are the same double).
  EXPECT_FALSE(answers_equal("12345678901234567890", "12345678901234567891", Compare::numeric));
  EXPECT_TRUE(answers_equal("12,345,678,901,234,567,890", "12345678901234567890", Compare::numeric));
  EXPECT_FALSE(answers_equal("five", "5", Compare::numeric));
  EXPECT_FALSE(answers_equal("1000", "1,000", Compare::exact));
  EXPECT_TRUE(answers_equal(" Paris", "Paris ", Compare::exact));
  EXPECT_FALSE(answers_equal("paris", "Paris", Compare::exact));
  EXPECT_TRUE(answers_equal("paris", "Paris", Compare::exact, 1e-6, /*ignore_case=*/true));
  EXPECT_TRUE(answers_equal("Paris", "Paris", Compare::automatic));  // not numbers: exact
  EXPECT_FALSE(answers_equal("x=5", "5", Compare::automatic));
}

Sample sample(std::string completion, std::optional<std::string> reference) {
  Sample s;
  s.completion = std::move(completion);
  s.reference = std::move(reference);
  return s;
}

TEST(AnswerMatch, ValuesAndNullWithoutReference) {
  AnswerMatchOptions o;
  o.incorrect = -0.5;
  o.no_answer = -1.0;
  AnswerMatch r(o);
  std::vector<Sample> batch = {
      sample("12 + 30 = 42. The answer is 42.", "42"),
      sample("so it is 41", "#### 42"),
      sample("I cannot say", "42"),
      sample("42", std::nullopt),                                  // no reference: cannot judge
      sample("The result: \\boxed{1,234}", "Work...\n#### 1234"),  // GSM8K reference
      sample("3/4", "  "),                                         // empty reference: cannot judge
  };
  auto s = r.score(batch);
  ASSERT_EQ(s.size(), batch.size());
  EXPECT_EQ(s[0], 1.0);
  EXPECT_EQ(s[1], -0.5);
  EXPECT_EQ(s[2], -1.0);
  EXPECT_FALSE(s[3]);
  EXPECT_EQ(s[4], 1.0);
  EXPECT_FALSE(s[5]);
}

TEST(AnswerMatch, ChosenExtractionIsTheOnlyOneUsed) {
  AnswerMatchOptions o;
  o.extract = "last_number";
  AnswerMatch last(o);
  // The boxed 5 is ignored: last_number sees the 6.
  EXPECT_EQ(last.score_one(sample("\\boxed{5} (checked 6 ways)", "5")), 0.0);
  o.extract = "boxed";
  AnswerMatch boxed(o);
  EXPECT_EQ(boxed.score_one(sample("\\boxed{5} (checked 6 ways)", "5")), 1.0);
  EXPECT_EQ(boxed.score_one(sample("5", "5")), 0.0);  // no box: no_answer
}

}  // namespace
}  // namespace tune::reward

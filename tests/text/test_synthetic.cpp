#include <gtest/gtest.h>

#include <set>

#include "tune/core/error.h"
#include "tune/text/synthetic.h"

namespace tune::text {
namespace {

TEST(Synthetic, AdditionRecordsAreCorrectAndDistinct) {
  auto recs = make_synthetic({.task = "addition", .count = 500, .seed = 3, .digits = 2});
  ASSERT_EQ(recs.size(), 500u);
  std::set<std::string> prompts;
  for (const auto& r : recs) {
    std::string p = r["messages"][0]["content"], a = r["messages"][1]["content"];
    auto plus = p.find('+');
    int x = std::stoi(p.substr(0, plus)), y = std::stoi(p.substr(plus + 1));
    EXPECT_EQ(std::to_string(x + y), a) << p;
    EXPECT_EQ(synthetic_answer(p), a);
    prompts.insert(p);
  }
  EXPECT_EQ(prompts.size(), 500u);
}

TEST(Synthetic, SameSeedSameData_ExcludeKeepsSetsDisjoint) {
  auto a = make_synthetic({.task = "reverse", .count = 50, .seed = 9, .digits = 4});
  auto b = make_synthetic({.task = "reverse", .count = 50, .seed = 9, .digits = 4});
  EXPECT_EQ(a, b);
  std::vector<std::string> train;
  for (auto& r : a) train.push_back(r["messages"][0]["content"]);
  auto test = make_synthetic({.task = "reverse", .count = 50, .seed = 10, .digits = 4, .exclude_prompts = train});
  for (auto& r : test) EXPECT_EQ(std::count(train.begin(), train.end(), r["messages"][0]["content"]), 0);
  std::string digits = a[0]["messages"][0]["content"].get<std::string>().substr(8);
  EXPECT_EQ(a[0]["answer"].get<std::string>(), std::string(digits.rbegin(), digits.rend()));
}

TEST(Synthetic, PreferencePairsPreferTheCorrectSum) {
  auto recs = make_synthetic({.task = "addition_pref", .count = 200, .seed = 1, .digits = 2});
  for (const auto& r : recs) {
    EXPECT_EQ(synthetic_answer(r["prompt"]), r["chosen"].get<std::string>());
    EXPECT_NE(r["chosen"], r["rejected"]);
    EXPECT_EQ(r["rejected"].get<std::string>().size() >= 1, true);
  }
}

TEST(Synthetic, ReversalPairsPreferTheExactReversalToASlip) {
  auto recs = make_synthetic({.task = "reverse_pref", .count = 300, .seed = 1, .digits = 4});
  int swaps = 0;
  for (const auto& r : recs) {
    std::string chosen = r["chosen"], rejected = r["rejected"];
    EXPECT_EQ(synthetic_answer(r["prompt"]), chosen);
    ASSERT_EQ(rejected.size(), chosen.size());
    ASSERT_NE(rejected, chosen);
    std::vector<size_t> differ;
    for (size_t i = 0; i < chosen.size(); ++i)
      if (chosen[i] != rejected[i]) differ.push_back(i);
    if (differ.size() == 2) {  // neighbours swapped
      EXPECT_EQ(differ[1], differ[0] + 1);
      EXPECT_EQ(chosen[differ[0]], rejected[differ[1]]);
      EXPECT_EQ(chosen[differ[1]], rejected[differ[0]]);
      ++swaps;
    } else {  // one digit off by one (mod 10)
      ASSERT_EQ(differ.size(), 1u);
      int d = (rejected[differ[0]] - chosen[differ[0]] + 10) % 10;
      EXPECT_TRUE(d == 1 || d == 9) << chosen << " vs " << rejected;
    }
  }
  EXPECT_GT(swaps, 100);  // both kinds of slip occur (about half each)
  EXPECT_LT(swaps, 200);
}

TEST(Synthetic, PromptFormatWritesRlPromptsWithTheRightReference) {
  for (const std::string task : synthetic_task_names()) {
    auto recs = make_synthetic({.task = task, .count = 40, .seed = 4, .digits = 3, .format = "prompt"});
    ASSERT_EQ(recs.size(), 40u) << task;
    std::set<std::string> prompts;
    for (const auto& r : recs) {
      ASSERT_EQ(r.size(), 2u) << r.dump();
      const std::string p = r["prompt"], ref = r["reference"];
      EXPECT_EQ(synthetic_answer(p), ref) << task << ": " << p;
      prompts.insert(p);
    }
    EXPECT_EQ(prompts.size(), 40u) << task;
  }
  // The same prompts as the training form of the task, for a seed.
  auto chat = make_synthetic({.task = "addition", .count = 5, .seed = 4, .digits = 3});
  auto rl = make_synthetic({.task = "addition", .count = 5, .seed = 4, .digits = 3, .format = "prompt"});
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(chat[i]["messages"][0]["content"], rl[i]["prompt"]);
  EXPECT_THROW(make_synthetic({.task = "addition", .count = 1, .format = "chatty"}), UsageError);
}

TEST(Synthetic, ImpossibleRequestsAreUsageErrors) {
  EXPECT_THROW(make_synthetic({.task = "addition", .count = 101, .seed = 1, .digits = 1}), UsageError);
  EXPECT_THROW(make_synthetic({.task = "nope", .count = 1}), UsageError);
  // 2-digit strings: 100 distinct reversal prompts, for both reversal tasks.
  EXPECT_THROW(make_synthetic({.task = "reverse_pref", .count = 101, .seed = 1, .digits = 2}), UsageError);
  EXPECT_EQ(make_synthetic({.task = "reverse_pref", .count = 100, .seed = 1, .digits = 2}).size(), 100u);
}

}  // namespace
}  // namespace tune::text

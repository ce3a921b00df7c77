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

TEST(Synthetic, ImpossibleRequestsAreUsageErrors) {
  EXPECT_THROW(make_synthetic({.task = "addition", .count = 101, .seed = 1, .digits = 1}), UsageError);
  EXPECT_THROW(make_synthetic({.task = "nope", .count = 1}), UsageError);
}

}  // namespace
}  // namespace tune::text

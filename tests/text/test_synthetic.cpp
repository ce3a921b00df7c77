#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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

TEST(SyntheticSource, DefaultsAreThoseOfDataSynth) {
  SynthOptions o = parse_synthetic_source("synth:reverse");
  EXPECT_EQ(o.task, "reverse");
  EXPECT_EQ(o.count, 1000);
  EXPECT_EQ(o.seed, 1u);
  EXPECT_EQ(o.digits, 2);
  EXPECT_TRUE(o.exclude_prompts.empty());
  o = parse_synthetic_source("synth:addition_pref?digits=3&seed=77&count=12");
  EXPECT_EQ(o.task, "addition_pref");
  EXPECT_EQ(o.count, 12);
  EXPECT_EQ(o.seed, 77u);
  EXPECT_EQ(o.digits, 3);
}

TEST(SyntheticSource, JsonlIsWhatDataSynthWrites) {
  auto recs = make_synthetic({.task = "addition", .count = 40, .seed = 5, .digits = 2});
  std::string expected;
  for (const auto& r : recs) expected += r.dump() + "\n";
  EXPECT_EQ(synthetic_source_jsonl("synth:addition?count=40&seed=5"), expected);
  EXPECT_TRUE(is_synthetic_source("synth:addition"));
  EXPECT_FALSE(is_synthetic_source("runs/data/synth:addition.jsonl"));
}

TEST(SyntheticSource, NestedExclusionsKeepAChainOfSetsDisjoint) {
  // train (seed 1) -> test excludes train -> preference pairs exclude test: as the DPO preset does.
  const std::string train = "synth:addition?count=2000&seed=1&digits=2";
  const std::string test = "synth:addition?count=300&seed=2&exclude=" + train;
  const std::string pref = "synth:addition_pref?count=500&seed=21&exclude=" + test;
  auto prompts = [](const std::string& source) {
    std::set<std::string> out;
    for (const auto& p : prompts_of_source(source)) out.insert(p);
    return out;
  };
  auto tr = prompts(train), te = prompts(test), pr = prompts(pref);
  EXPECT_EQ(tr.size(), 2000u);
  EXPECT_EQ(te.size(), 300u);
  EXPECT_EQ(pr.size(), 500u);
  for (const auto& p : te) EXPECT_EQ(tr.count(p), 0u) << p;
  for (const auto& p : pr) EXPECT_EQ(te.count(p), 0u) << p;
  // Excluding changes only which prompts are kept, as --exclude does.
  std::vector<std::string> train_prompts(tr.begin(), tr.end());
  auto direct = make_synthetic({.task = "addition", .count = 300, .seed = 2, .digits = 2, .exclude_prompts = train_prompts});
  EXPECT_EQ(synthetic_source_jsonl(test), synthetic_jsonl(direct));
}

TEST(SyntheticSource, ExcludeReadsAFileOfRecords) {
  auto path = std::filesystem::temp_directory_path() / ("tune-synth-exclude-" + std::to_string(::getpid()) + ".jsonl");
  const std::string train = "synth:reverse?digits=3&count=600&seed=4";
  {
    std::ofstream f(path);
    f << synthetic_source_jsonl(train) << "\n";  // a trailing blank line is skipped
  }
  EXPECT_EQ(synthetic_source_jsonl("synth:reverse?digits=3&count=300&seed=9&exclude=" + path.string()),
            synthetic_source_jsonl("synth:reverse?digits=3&count=300&seed=9&exclude=" + train));
  std::filesystem::remove(path);
}

TEST(SyntheticSource, MalformedSourcesAreUsageErrors) {
  for (const char* bad : {"synth:", "synth:nope", "synth:addition?count", "synth:addition?count=-1", "synth:addition?count=1x",
                          "synth:addition?seed=1&seed=2", "synth:addition?digits=0", "synth:addition?color=red",
                          "synth:addition?exclude=", "synth:addition?count=1&", "runs/data/train.jsonl"})
    EXPECT_THROW(parse_synthetic_source(bad), UsageError) << bad;
  try {
    parse_synthetic_source("synth:addition?colour=red");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("synth:addition?colour=red"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unknown parameter 'colour'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tune::text

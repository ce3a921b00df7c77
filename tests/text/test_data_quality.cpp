// `tune data check|filter` logic: measures, filters with practitioners' defaults, near-duplicates,
// token statistics, the filtered JSONL and the report.
#include <gtest/gtest.h>

#include <filesystem>

#include "tune/core/fs.h"
#include "tune/text/data_quality.h"
#include "tune/text/records.h"
#include "tune/text/tiny_tokenizer.h"

namespace tune::text {
namespace {

namespace stdfs = std::filesystem;
const stdfs::path kData = stdfs::path(TUNE_SOURCE_DIR) / "tests/data/datasets";

TEST(DataQuality, WordsCharsAndDistinctRatio) {
  EXPECT_EQ(words_of("Hello, WORLD! it's 42"), (std::vector<std::string>{"hello", "world", "it", "s", "42"}));
  EXPECT_EQ(count_chars("caf\xC3\xA9"), 4);
  WordStats w = word_stats("a b a b c");
  EXPECT_EQ(w.words, 5);
  EXPECT_EQ(w.distinct, 3);
  EXPECT_DOUBLE_EQ(w.distinct_ratio(), 0.6);
  EXPECT_DOUBLE_EQ(word_stats("").distinct_ratio(), 1.0);
}

TEST(DataQuality, ShingleJaccardHandWorked) {
  // {abc, bcd, cde} vs {abc, bcd, cdf}: 2 shared of 4.
  EXPECT_DOUBLE_EQ(shingle_jaccard("a b c d e", "a b c d f"), 0.5);
  EXPECT_DOUBLE_EQ(shingle_jaccard("A b, c!", "a B c"), 1.0);
  EXPECT_DOUBLE_EQ(shingle_jaccard("one two", "three four"), 0.0);
}

TEST(DataQuality, NearDuplicatesFindsTheMostSimilarEarlierText) {
  NearDuplicates d(0.85);
  std::string base = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22";
  d.add("completely different words in this sentence right here");
  d.add(base);
  double sim = 0;
  // One word changed at the end: 19 of 20 shingles shared, Jaccard 19/21 = 0.905.
  EXPECT_EQ(d.find("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 x", &sim), 1);
  EXPECT_NEAR(sim, 19.0 / 21.0, 1e-12);
  // One word changed in the middle: 17 of 20 shared, Jaccard 17/23 = 0.739 < 0.85.
  EXPECT_EQ(d.find("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 x w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22"), -1);
  NearDuplicates off(1.5);
  off.add(base);
  EXPECT_EQ(off.find(base), -1);
}

TEST(DataQuality, PercentileNearestRank) {
  std::vector<double> v = {5, 1, 4, 2, 3, 6, 7, 8, 9, 10};
  EXPECT_EQ(percentile(v, 0), 1);
  EXPECT_EQ(percentile(v, 50), 5);
  EXPECT_EQ(percentile(v, 90), 9);
  EXPECT_EQ(percentile(v, 99), 10);
  EXPECT_EQ(percentile(v, 100), 10);
  EXPECT_EQ(percentile({}, 50), 0);
}

TEST(DataQuality, CheckReportsProblemsAndTokenStatistics) {
  auto tok = Tokenizer::from_json(tiny_tokenizer_json(), "tiny");
  tok->apply_config(tiny_tokenizer_config_json(), Json());
  ChatMasker masker(*tok, nullptr);
  DatasetConfig ds{.path = (kData / "quality.jsonl").string()};
  QualityConfig q;
  q.blocklist = {"AS AN AI"};
  q.max_seq_len = 16;
  Json r = check_dataset(ds, q, &masker);
  EXPECT_EQ(r["records"], 8);
  EXPECT_EQ(r["invalid"], 2);  // a record without "text", a line that is not JSON
  EXPECT_EQ(r["problems"]["too_short"], 1);
  EXPECT_EQ(r["problems"]["low_distinct_words"], 1);
  EXPECT_EQ(r["problems"]["near_duplicate"], 2);
  EXPECT_EQ(r["problems"]["blocked"], 1);
  EXPECT_EQ(r["problems"]["too_long"], 0);
  EXPECT_EQ(r["would_keep"], 3);
  EXPECT_EQ(r["chars"]["min"], 2);
  EXPECT_EQ(r["chars"]["max"], 70);
  std::string dup_example = r["examples"]["near_duplicate"][0];
  EXPECT_NE(dup_example.find("quality.jsonl:4 (~"), std::string::npos) << dup_example;
  EXPECT_NE(dup_example.find("quality.jsonl:3, 1.00)"), std::string::npos) << dup_example;
  // Token counts: each text encoded with special tokens, plus EOS.
  std::vector<double> lengths;
  for (auto& rec : read_records(ds.path, {.skip_invalid = true}).records) {
    if (!rec.value.contains("text")) continue;
    lengths.push_back(static_cast<double>(tok->encode(rec.value["text"].get<std::string>(), true).size() + 1));
  }
  ASSERT_EQ(lengths.size(), 8u);
  EXPECT_EQ(r["tokens"]["p50"].get<double>(), percentile(lengths, 50));
  EXPECT_EQ(r["tokens"]["max"].get<double>(), percentile(lengths, 100));
  int64_t over = std::count_if(lengths.begin(), lengths.end(), [](double l) { return l > 16; });
  EXPECT_DOUBLE_EQ(r["truncated_share"].get<double>(), static_cast<double>(over) / 8.0);
}

TEST(DataQuality, FilterWritesKeptRecordsAndReport) {
  stdfs::path dir = stdfs::temp_directory_path() / ("tune_quality_" + std::to_string(::getpid()));
  stdfs::create_directories(dir);
  DatasetConfig ds{.path = (kData / "quality.jsonl").string()};
  QualityConfig q;
  q.blocklist = {"as an ai"};
  FilterResult f = filter_dataset(ds, dir / "clean.jsonl", q, nullptr, dir / "report.json");
  EXPECT_EQ(f.kept, 3);
  EXPECT_EQ(f.dropped, 5);
  EXPECT_EQ(f.dropped_by["near_duplicate"], 2);
  RecordSet kept = read_records(dir / "clean.jsonl");
  ASSERT_EQ(kept.records.size(), 3u);
  EXPECT_EQ(kept.records[0].value["text"], "The quick brown fox jumps over the lazy dog near the river bank today.");
  EXPECT_EQ(kept.records[1].value["text"], "Paris is the capital of France and its largest city by population.");
  Json report = read_json_file(dir / "report.json");
  EXPECT_EQ(report["kept"], 3);
  EXPECT_EQ(report["dropped"], 7);  // 5 filtered + 2 unreadable
  EXPECT_FALSE(report.contains("tokens"));  // no tokenizer given
  // The three 70-character fox lines are too long for 66 (the 66-character lines are not).
  q.max_chars = 66;
  FilterResult tight = filter_dataset(ds, dir / "clean2.jsonl", q);
  EXPECT_EQ(tight.dropped_by["too_long"], 3);
  EXPECT_EQ(tight.dropped_by.count("near_duplicate"), 0u);
  stdfs::remove_all(dir);
}

TEST(DataQuality, ChatRecordsUseAllMessageContents) {
  Sample s;
  s.messages = {{"user", "question here", Json::object()}, {"assistant", "answer there", Json::object()}};
  EXPECT_EQ(quality_text(s), "question here\nanswer there");
}

}  // namespace
}  // namespace tune::text

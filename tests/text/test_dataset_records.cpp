// Record readers: JSONL and JSON arrays, with file:line in every error and skip_invalid counting.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/error_text.h"
#include "tune/core/error.h"
#include "tune/text/records.h"

namespace tune::text {
namespace {

const std::filesystem::path kData = std::filesystem::path(TUNE_SOURCE_DIR) / "tests/data/datasets";

using test::error_of;

TEST(DatasetRecords, JsonlSkipsBlankLinesAndKeepsLineNumbers) {
  RecordSet set = read_records(kData / "alpaca.jsonl");
  ASSERT_EQ(set.records.size(), 3u);
  EXPECT_EQ(set.records[0].value["output"], "5");
  EXPECT_EQ(set.records[1].where, (kData / "alpaca.jsonl").string() + ":3");  // line 2 is blank
  EXPECT_EQ(set.skipped, 0);
}

TEST(DatasetRecords, JsonArrayElementsKnowTheirLines) {
  RecordSet set = read_records(kData / "array.json");
  ASSERT_EQ(set.records.size(), 3u);
  EXPECT_EQ(set.records[1].value["output"], "two");
  EXPECT_EQ(set.records[1].where, (kData / "array.json").string() + ":3 [1]");
  EXPECT_EQ(set.records[2].where, (kData / "array.json").string() + ":7 [2]");
}

TEST(DatasetRecords, MalformedLineIsErrorNamingFileAndLine) {
  std::string msg = error_of([] { read_records(kData / "broken_json.jsonl"); });
  EXPECT_NE(msg.find("broken_json.jsonl:3: invalid JSON"), std::string::npos) << msg;
}

TEST(DatasetRecords, SkipInvalidCountsAndContinues) {
  RecordSet set = read_records(kData / "broken_json.jsonl", {.skip_invalid = true});
  ASSERT_EQ(set.records.size(), 3u);
  EXPECT_EQ(set.skipped, 1);
  ASSERT_EQ(set.skip_reasons.size(), 1u);
  EXPECT_NE(set.skip_reasons[0].find(":3:"), std::string::npos);
  EXPECT_EQ(set.records[2].value["instruction"], "after");
}

TEST(DatasetRecords, InvalidUtf8IsErrorOrSkipped) {
  std::string msg = error_of([] { read_records(kData / "broken_utf8.jsonl"); });
  EXPECT_NE(msg.find("broken_utf8.jsonl:2: invalid UTF-8 at byte 22"), std::string::npos) << msg;
  RecordSet set = read_records(kData / "broken_utf8.jsonl", {.skip_invalid = true});
  EXPECT_EQ(set.records.size(), 2u);
  EXPECT_EQ(set.skipped, 1);
}

TEST(DatasetRecords, BrokenArrayIsAnErrorEvenWithSkip) {
  std::string msg = error_of([] { read_records(kData / "broken_array.json", {.skip_invalid = true}); });
  EXPECT_NE(msg.find("broken_array.json: invalid JSON array"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
}

TEST(DatasetRecords, NonObjectLinesAndMaxRecords) {
  std::string msg = error_of([] { parse_records("{\"a\":1}\n[1,2]\n", "mem"); });
  EXPECT_EQ(msg, "mem:2: expected a JSON object, got array");
  RecordSet set = parse_records("{\"a\":1}\r\n{\"a\":2}\r\n{\"a\":3}\r\n", "mem", {.max_records = 2});
  ASSERT_EQ(set.records.size(), 2u);
  EXPECT_EQ(set.records[1].value["a"], 2);
  EXPECT_TRUE(parse_records("\n\n  \n", "mem").records.empty());
  EXPECT_THROW(read_records(kData / "no_such_file.jsonl"), Error);
}

TEST(DatasetRecords, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(is_valid_utf8("\xC3"));                // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));            // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));        // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));    // U+110000
  EXPECT_FALSE(is_valid_utf8("\x80"));                // lone continuation byte
}

}  // namespace
}  // namespace tune::text

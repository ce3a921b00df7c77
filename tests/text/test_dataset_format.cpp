// Record formats -> samples (alpaca, sharegpt, messages, prompt_completion, text, preference,
// ranked preference, RL prompts), auto-detection and field maps.
#include <gtest/gtest.h>

#include <filesystem>

#include "tune/core/error.h"
#include "tune/text/dataset_format.h"

namespace tune::text {
namespace {

const std::filesystem::path kData = std::filesystem::path(TUNE_SOURCE_DIR) / "tests/data/datasets";

std::vector<Sample> load(const std::string& file, const std::string& format = "auto", Json map = Json::object(),
                         bool skip = false) {
  RecordSet set = read_records(kData / file);
  return convert_records(set, format, map, skip);
}

std::vector<std::pair<std::string, std::string>> pairs(const std::vector<Message>& m) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& x : m) out.emplace_back(x.role, x.content);
  return out;
}
using Turns = std::vector<std::pair<std::string, std::string>>;

TEST(DatasetFormat, Alpaca) {
  auto s = load("alpaca.jsonl");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(pairs(s[0].messages), (Turns{{"user", "Add the numbers.\n\n2 and 3"}, {"assistant", "5"}}));
  EXPECT_EQ(pairs(s[1].messages), (Turns{{"system", "Answer in one word."}, {"user", "Name a primary colour."}, {"assistant", "Red"}}));
  EXPECT_EQ(pairs(s[2].messages), (Turns{{"user", "Name a colour."}, {"assistant", "Green"}, {"user", "And the next one?"}, {"assistant", "Blue"}}));
  EXPECT_EQ(s[2].metadata, Json({{"id", 7}}));
  EXPECT_EQ(s[0].kind, SampleKind::chat);
}

TEST(DatasetFormat, ShareGptMapsSpeakers) {
  auto s = load("sharegpt.jsonl");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(pairs(s[1].messages), (Turns{{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "3+3?"}, {"assistant", "6"}}));
  Json bad = Json::parse(R"({"conversations": [{"from": "robot", "value": "x"}]})");
  EXPECT_THROW(convert_record(bad, "sharegpt", Json::object()), RecordError);
}

TEST(DatasetFormat, MessagesWithTextParts) {
  auto s = load("messages.jsonl");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(pairs(s[2].messages), (Turns{{"user", "Say yes"}, {"assistant", "yes"}}));
  EXPECT_EQ(s[1].metadata["difficulty"], 2);
}

TEST(DatasetFormat, PromptCompletionStringsAndLists) {
  auto s = load("prompt_completion.jsonl");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(pairs(s[0].messages), (Turns{{"user", "The sky is"}, {"assistant", " blue."}}));
  EXPECT_EQ(pairs(s[1].messages), (Turns{{"user", "Say hi"}, {"assistant", "hi"}}));
}

TEST(DatasetFormat, Text) {
  auto s = load("text.jsonl");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].kind, SampleKind::text);
  EXPECT_EQ(s[1].text, "Pack my box with five dozen liquor jugs.");
}

TEST(DatasetFormat, PreferenceStringsListsMarginAndImplicitPrompt) {
  auto s = load("preference.jsonl");
  ASSERT_EQ(s.size(), 3u);
  for (auto& x : s) EXPECT_EQ(x.kind, SampleKind::preference);
  EXPECT_EQ(pairs(s[0].messages), (Turns{{"user", "2+2="}}));
  EXPECT_EQ(pairs(s[0].chosen), (Turns{{"assistant", "4"}}));
  EXPECT_EQ(pairs(s[0].rejected), (Turns{{"assistant", "5"}}));
  EXPECT_FALSE(s[0].margin.has_value());
  EXPECT_DOUBLE_EQ(*s[1].margin, 1.5);
  // No prompt field: the shared leading messages are the prompt.
  EXPECT_EQ(pairs(s[2].messages), (Turns{{"user", "Hi"}}));
  EXPECT_EQ(pairs(s[2].chosen), (Turns{{"assistant", "Hello!"}}));
  EXPECT_EQ(pairs(s[2].rejected), (Turns{{"assistant", "Go away."}}));
}

TEST(DatasetFormat, RankedListExpandsToAllPairsBestFirst) {
  auto s = load("ranked.jsonl");
  ASSERT_EQ(s.size(), 3u);  // k(k-1)/2 with k = 3
  Turns expected_pairs[3][2] = {{{{"assistant", "2"}}, {{"assistant", "two-ish"}}},
                                {{{"assistant", "2"}}, {{"assistant", "3"}}},
                                {{{"assistant", "two-ish"}}, {{"assistant", "3"}}}};
  double margins[3] = {1.0, 2.5, 1.5};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pairs(s[i].chosen), expected_pairs[i][0]);
    EXPECT_EQ(pairs(s[i].rejected), expected_pairs[i][1]);
    EXPECT_DOUBLE_EQ(*s[i].margin, margins[i]);
    EXPECT_EQ(s[i].where, s[0].where);
  }
}

TEST(DatasetFormat, RlPromptsWithReferences) {
  auto s = load("rl_prompts.jsonl");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].kind, SampleKind::prompt);
  EXPECT_EQ(pairs(s[0].messages), (Turns{{"user", "12+30="}}));
  EXPECT_EQ(*s[0].reference, "42");
  EXPECT_EQ(*s[1].reference, "15");  // numbers become their JSON text
  // A conversation as prompt: its trailing assistant message is the reference.
  EXPECT_EQ(pairs(s[2].messages), (Turns{{"user", "1+1="}}));
  EXPECT_EQ(*s[2].reference, "2");
}

TEST(DatasetFormat, RlPromptFromMessagesList) {
  // Format "prompt" also takes the prompt from a `messages` list when there is no `prompt` field;
  // a trailing assistant turn is the reference unless an answer field names one.
  auto a = convert_record(Json::parse(R"({"messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":"2+2="},{"role":"assistant","content":"4"}],"level":1})"), "prompt", Json::object());
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(pairs(a[0].messages), (Turns{{"system", "be brief"}, {"user", "2+2="}}));
  EXPECT_EQ(*a[0].reference, "4");
  EXPECT_EQ(a[0].metadata, Json({{"level", 1}}));
  auto b = convert_record(Json::parse(R"({"messages":[{"role":"user","content":"3+3="}],"reference":"6"})"), "prompt",
                          Json::object());
  EXPECT_EQ(pairs(b[0].messages), (Turns{{"user", "3+3="}}));
  EXPECT_EQ(*b[0].reference, "6");
  EXPECT_TRUE(b[0].metadata.empty());
  EXPECT_THROW(convert_record(Json::parse(R"({"messages":[{"role":"assistant","content":"x"}]})"), "prompt",
                              Json::object()),
               RecordError);
}

TEST(DatasetFormat, FieldMapRenamesFields) {
  Json map = {{"instruction", "question"}, {"output", "answer"}};
  auto s = load("mapped.jsonl", "auto", map);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(pairs(s[0].messages), (Turns{{"user", "What is 6*7?"}, {"assistant", "42"}}));
  EXPECT_EQ(s[0].metadata, Json({{"level", 3}}));
}

TEST(DatasetFormat, DetectByFields) {
  auto detect = [](const char* j) { return detect_format(Json::parse(j), Json::object()); };
  EXPECT_EQ(detect(R"({"instruction":"a","output":"b"})"), "alpaca");
  EXPECT_EQ(detect(R"({"conversations":[]})"), "sharegpt");
  EXPECT_EQ(detect(R"({"messages":[]})"), "messages");
  EXPECT_EQ(detect(R"({"prompt":"a","completion":"b"})"), "prompt_completion");
  EXPECT_EQ(detect(R"({"prompt":"a","chosen":"b","rejected":"c"})"), "preference");
  EXPECT_EQ(detect(R"({"prompt":"a","responses":["b","c"]})"), "preference");
  EXPECT_EQ(detect(R"({"text":"a"})"), "text");
  EXPECT_EQ(detect(R"({"prompt":"a","answer":"b"})"), "prompt");
  EXPECT_THROW(detect(R"({"foo":"a"})"), RecordError);
}

TEST(DatasetFormat, MissingAndMistypedFieldsNameFileLineAndField) {
  RecordSet set = read_records(kData / "broken_field.jsonl");
  try {
    convert_records(set, "alpaca", Json::object(), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken_field.jsonl:2: missing field 'output'"), std::string::npos) << e.what();
  }
  RecordSet again = read_records(kData / "broken_field.jsonl");
  auto s = convert_records(again, "alpaca", Json::object(), true);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(again.skipped, 2);
  ASSERT_EQ(again.skip_reasons.size(), 2u);
  EXPECT_NE(again.skip_reasons[1].find(":3: field 'instruction' must be a string, got number"), std::string::npos)
      << again.skip_reasons[1];
}

TEST(DatasetFormat, MessagesToJsonKeepsExtras) {
  Message m{"assistant", "x", Json{{"reasoning_content", "think"}}};
  Json j = messages_to_json({m});
  EXPECT_EQ(j, Json::parse(R"([{"role":"assistant","content":"x","reasoning_content":"think"}])"));
}

}  // namespace
}  // namespace tune::text

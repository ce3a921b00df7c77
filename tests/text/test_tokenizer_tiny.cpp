// The tiny tokenizer: shape (size, digits, specials), configuration, and streaming decode of
// characters that arrive one byte token at a time. Parity with the HF library is in
// tests/parity/test_tokenizers.py.
#include <gtest/gtest.h>

#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"

namespace {

using tune::text::IncrementalDecoder;
using tune::text::Tokenizer;

std::unique_ptr<Tokenizer> tiny() {
  auto tok = Tokenizer::from_json(tune::text::tiny_tokenizer_json(), "tiny tokenizer.json");
  tok->apply_config(tune::text::tiny_tokenizer_config_json(), tune::Json());
  return tok;
}

TEST(TinyTokenizer, SizeAndSpecialTokens) {
  auto tok = tiny();
  EXPECT_GE(tok->vocab_size(), 400);
  EXPECT_LE(tok->vocab_size(), 600);
  const auto endoftext = tok->token_to_id("<|endoftext|>");
  const auto im_start = tok->token_to_id("<|im_start|>");
  const auto im_end = tok->token_to_id("<|im_end|>");
  ASSERT_TRUE(endoftext && im_start && im_end);
  EXPECT_EQ(*im_start, *endoftext + 1);
  EXPECT_EQ(*im_end, tok->vocab_size() - 1);
  EXPECT_EQ(tok->special().eos, im_end);
  EXPECT_EQ(tok->special().pad, endoftext);
  EXPECT_FALSE(tok->special().bos.has_value());
  EXPECT_EQ(tok->special().stop_ids, std::vector<int32_t>{*im_end});
  EXPECT_TRUE(tok->is_special(*im_start));
  // The merges learned something: common English words are single tokens.
  EXPECT_EQ(tok->encode(" the").size(), 1u);
  EXPECT_LT(tok->encode("What is the answer?").size(), 10u);
}

TEST(TinyTokenizer, EveryDigitIsItsOwnToken) {
  auto tok = tiny();
  const std::string text = "What is 12345 + 678? The answer is 13023.";
  std::string digits;
  for (int32_t id : tok->encode(text)) {
    std::string piece = tok->decode(std::vector<int32_t>{id});
    bool has_digit = piece.find_first_of("0123456789") != std::string::npos;
    if (has_digit) {
      EXPECT_EQ(piece.size(), 1u) << "token '" << piece << "' holds a digit and more";
      digits += piece;
    }
  }
  EXPECT_EQ(digits, "1234567813023");
  // The ids of "0".."9" are the byte values.
  EXPECT_EQ(tok->encode("7"), std::vector<int32_t>{'7'});
}

TEST(TinyTokenizer, ChatMarkupRoundTrips) {
  auto tok = tiny();
  const std::string text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n";
  auto ids = tok->encode(text);
  EXPECT_EQ(ids.front(), *tok->token_to_id("<|im_start|>"));
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->decode(ids, true), "user\nWhat is 2+2?\nassistant\n4\n");
  auto config = tune::text::tiny_tokenizer_config_json();
  EXPECT_NE(config["chat_template"].get<std::string>().find("add_generation_prompt"), std::string::npos);
}

TEST(TinyTokenizer, IncrementalDecoderHoldsBackPartialCharacters) {
  auto tok = tiny();
  // Non-ASCII characters have no merges here: each arrives as 2-4 single-byte tokens.
  const std::string text = "café 中文 👍🏽 done<|im_end|>";
  auto ids = tok->encode(text);
  ASSERT_GT(ids.size(), 20u);
  IncrementalDecoder stream(*tok);
  std::string joined;
  int empty_pushes = 0;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
    if (piece.empty()) ++empty_pushes;
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, "café 中文 👍🏽 done");
  EXPECT_GT(empty_pushes, 5);  // the partial bytes were held back
}

TEST(TinyTokenizer, IncrementalDecoderFlushesInvalidTailOnFinish) {
  auto tok = tiny();
  auto ids = tok->encode("ok\xE4\xB8\xAD");  // 中 as three byte tokens
  ids.pop_back();                             // drop the last byte: an incomplete character
  IncrementalDecoder stream(*tok);
  std::string joined;
  for (int32_t id : ids) joined += stream.push(id);
  EXPECT_EQ(joined, "ok");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // one U+FFFD for the maximal invalid prefix
}

}  // namespace

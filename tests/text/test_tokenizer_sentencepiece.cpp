// SentencePiece tokenizer.model support, checked against libsentencepiece loaded in this same
// process (the fixtures are trained by tests/data/tokenizers/make_spm_fixtures.py).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "tune/core/error.h"

#include "tune/text/tokenizer.h"

#ifdef TUNE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace {

using tune::text::Tokenizer;
namespace stdfs = std::filesystem;

const stdfs::path kFixtures = stdfs::path(TUNE_SOURCE_DIR) / "tests/data/tokenizers";

const std::vector<std::string> kTexts = {
    "Hello world",
    "  two  spaces and a trailing one ",
    "Return the number of items.\nNew line\ttab",
    "ｆｕｌｌｗｉｄｔｈ ① ½ é e\xCC\x81 ﬁne",
    "中文 and 日本語 mixed, Привет",
    "emoji 👩‍👩‍👧 ❤️",
    "",
    "   ",
    "x",
};

TEST(SentencePiece, SpecialIdsAndBos) {
  auto tok = Tokenizer::load(kFixtures / "spm_bpe.model");
  EXPECT_EQ(tok->special().unk, 0);
  EXPECT_EQ(tok->special().bos, 1);
  EXPECT_EQ(tok->special().eos, 2);
  EXPECT_TRUE(tok->special().add_bos);
  auto plain = tok->encode("Hello");
  auto with_bos = tok->encode("Hello", true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos.front(), 1);
  EXPECT_EQ(tok->token_to_id("<0x41>"), 3 + 0x41);  // byte pieces follow <unk>, <s>, </s>
  EXPECT_TRUE(tok->is_special(1));
}

TEST(SentencePiece, WhitespaceHandlingFollowsTheNormalizerSpec) {
  // spm_bpe keeps extra whitespace (Llama 2-like); spm_unigram removes it.
  auto keep = Tokenizer::load(kFixtures / "spm_bpe.model");
  auto collapse = Tokenizer::load(kFixtures / "spm_unigram.model");
  EXPECT_EQ(keep->decode(keep->encode(" a  b ")), " a  b ");
  EXPECT_EQ(collapse->decode(collapse->encode(" a  b ")), "a b");
  // The unigram fixture's character map applies NFKC to fullwidth letters.
  EXPECT_EQ(collapse->decode(collapse->encode("ｆｕｌｌ")), "full");
}

TEST(SentencePiece, CorruptModelIsAnError) {
  std::string junk = "\x0a\xff\xff\xff\xff\x0f";  // field 1, length far past the end
  auto path = stdfs::temp_directory_path() / ("tune_bad_" + std::to_string(::getpid()) + ".model");
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  EXPECT_THROW(Tokenizer::load(path), tune::Error);
  stdfs::remove(path);
}

#ifdef TUNE_HAVE_SENTENCEPIECE
TEST(SentencePiece, AgreesWithLibSentencePieceInProcess) {
  for (const char* name : {"spm_bpe.model", "spm_unigram.model", "spm_bpe_unk.model", "spm_unigram_unk.model"}) {
    sentencepiece::SentencePieceProcessor reference;
    auto status = reference.Load((kFixtures / name).string());
    ASSERT_TRUE(status.ok()) << name << ": " << status.ToString();
    auto ours = Tokenizer::load(kFixtures / name);
    for (const std::string& text : kTexts) {
      std::vector<int> expected;
      ASSERT_TRUE(reference.Encode(text, &expected).ok());
      auto got = ours->encode(text);
      EXPECT_EQ(std::vector<int>(got.begin(), got.end()), expected) << name << ": '" << text << "'";
      std::string decoded;
      ASSERT_TRUE(reference.Decode(expected, &decoded).ok());
      EXPECT_EQ(ours->decode(got), decoded) << name << ": '" << text << "'";
    }
  }
}
#else
TEST(SentencePiece, AgreesWithLibSentencePieceInProcess) {
  GTEST_SKIP() << "libsentencepiece was not found at configure time";
}
#endif

}  // namespace

namespace {

TEST(SentencePiece, IncrementalDecoderKeepsWordSpacesAndBytes) {
  auto tok = tune::text::Tokenizer::load(kFixtures / "spm_bpe.model");
  const std::string text = "The list of 中文 items ❤ and more";
  auto ids = tok->encode(text);
  tune::text::IncrementalDecoder stream(*tok);
  std::string joined;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, text);
  EXPECT_EQ(joined, tok->decode(ids));
}

}  // namespace

// The libraries of the project live together in one LibTorch process: a SentencePiece model
// loaded by libsentencepiece (protobuf inside) and our own reader agree, while LibTorch computes;
// logging from a file that includes torch goes through the spdlog facade.
#include <gtest/gtest.h>
#include <torch/torch.h>

#ifdef TUNE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

#include "tune/core/log.h"
#include "tune/text/tokenizer.h"

namespace tune {
namespace {

TEST(Coexistence, SentencePieceAndLibTorchInOneProcess) {
#ifndef TUNE_HAVE_SENTENCEPIECE
  GTEST_SKIP() << "libsentencepiece not found at configure time";
#else
  const std::string model = std::string(TUNE_SOURCE_DIR) + "/tests/data/tokenizers/spm_bpe.model";
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model).ok());
  auto ours = text::Tokenizer::load(model);
  const std::string text = "Hello world, this is tune.";
  std::vector<int> expected;
  ASSERT_TRUE(sp.Encode(text, &expected).ok());
  auto got = ours->encode(text, /*add_special_tokens=*/false);
  EXPECT_EQ(std::vector<int>(got.begin(), got.end()), expected);
  // LibTorch keeps working next to it.
  auto t = torch::arange(6, torch::kFloat32).view({2, 3});
  EXPECT_FLOAT_EQ(t.sum().item<float>(), 15.0f);
  log::info("sentencepiece and LibTorch coexist: ", got.size(), " tokens");
#endif
}

}  // namespace
}  // namespace tune

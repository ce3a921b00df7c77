// Saving and loading HF directories from C++ (the transformers side is in tests/parity/test_model.py).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "support/temp_dir.h"
#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/model/weights.h"

using namespace tune::model;
namespace stdfs = std::filesystem;

namespace {

void expect_same_parameters(CausalLM& a, CausalLM& b) {
  auto pa = a.named_parameters();
  auto pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    ASSERT_TRUE(pb.contains(item.key())) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  }
}

}  // namespace

TEST(ModelWeights, RoundTripShardedTiedWithExtraFiles) {
  auto config = preset_config("tiny", 300);
  CausalLM model(config);
  init_random(model, 5);
  auto src = tune::test::fresh_path("src");
  stdfs::create_directories(src);
  std::ofstream(src / "tokenizer.json") << "{\"model\": {}}";
  std::ofstream(src / "model.safetensors") << "not copied";

  auto out = tune::test::fresh_path("out");
  stdfs::create_directories(out);
  std::ofstream(out / "stale.txt") << "replaced with the directory";
  SaveOptions opt;
  opt.max_shard_bytes = 200'000;
  opt.copy_files_from = src;
  save_pretrained(model, out, opt);

  EXPECT_TRUE(stdfs::exists(out / "tokenizer.json"));
  EXPECT_FALSE(stdfs::exists(out / "stale.txt"));
  EXPECT_FALSE(stdfs::exists(out / "model.safetensors"));
  auto index = tune::read_json_file(out / "model.safetensors.index.json");
  EXPECT_FALSE(index["weight_map"].contains("lm_head.weight"));  // tied
  EXPECT_GT(index["metadata"]["total_size"].get<int64_t>(), 0);
  auto loaded = load_pretrained(out);
  expect_same_parameters(model, *loaded);
  EXPECT_TRUE(torch::equal(loaded->lm_head().weight(), loaded->embed_weight()));

  // Parameters of the tiny preset follow the normal init: std 0.02, norms 1.
  auto& embed = loaded->embed_weight();
  EXPECT_NEAR(embed.std().item<double>(), 0.02, 0.001);
  EXPECT_EQ(loaded->config().num_parameters(), [&] {
    int64_t n = 0;
    for (auto& p : loaded->parameters()) n += p.numel();
    return n;
  }());
  stdfs::remove_all(src);
  stdfs::remove_all(out);
}

TEST(ModelWeights, Bf16FilesAndDtypeConversion) {
  auto config = preset_config("tiny", 64);
  config.tie_word_embeddings = false;
  CausalLM model(config);
  init_random(model, 6);
  auto out = tune::test::fresh_path("bf16");
  SaveOptions opt;
  opt.dtype = torch::kBFloat16;
  save_pretrained(model, out, opt);
  EXPECT_EQ(tune::read_json_file(out / "config.json")["torch_dtype"], "bfloat16");
  auto as_f32 = load_pretrained(out, torch::kFloat32);
  auto as_bf16 = load_pretrained(out, torch::kBFloat16);
  for (const auto& item : model.named_parameters()) {
    auto rounded = item.value().to(torch::kBFloat16);
    EXPECT_TRUE(torch::equal(as_bf16->named_parameters()[item.key()], rounded)) << item.key();
    EXPECT_TRUE(torch::equal(as_f32->named_parameters()[item.key()], rounded.to(torch::kFloat32))) << item.key();
  }
  EXPECT_EQ(as_bf16->options().dtype(), torch::kBFloat16);
  stdfs::remove_all(out);
}

TEST(ModelWeights, MissingDirectoryAndWrongConfigAreReported) {
  auto out = tune::test::fresh_path("missing");
  stdfs::create_directories(out);
  try {
    load_pretrained(out);
    FAIL() << "expected an error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  tune::write_json_file(out / "config.json", preset_config("tiny", 32).to_json());
  try {
    load_pretrained(out);
    FAIL() << "expected an error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  stdfs::remove_all(out);
}

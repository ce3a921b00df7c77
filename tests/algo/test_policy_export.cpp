// The LoRA export publishes the adapter and its tokenizer files together: a failure while copying
// the tokenizer leaves the previous export as it was (it used to publish the adapter first).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>

#include "tune/algo/policy.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/str.h"
#include "tune/lora/inject.h"
#include "tune/model/weights.h"

namespace {

using namespace tune;
namespace stdfs = std::filesystem;

algo::Policy tiny_lora_policy(const stdfs::path& base_dir) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  algo::Policy p;
  p.model = std::make_shared<model::CausalLM>(c);
  model::init_random(*p.model, 1);
  p.lora = lora::inject_lora(*p.model, lora::LoraConfig{});
  p.trainable = p.lora.trainable();
  p.base_dir = base_dir;
  return p;
}

TEST(PolicyExport, AFailedTokenizerCopyLeavesThePreviousAdapterExport) {
  const stdfs::path root = stdfs::temp_directory_path() / str("tune-test-", ::getpid(), "-export");
  stdfs::remove_all(root);
  const stdfs::path base = root / "base", out = root / "final";
  stdfs::create_directories(base);
  fs::write_file_atomic(base / "tokenizer_config.json", "{}");
  algo::Policy policy = tiny_lora_policy(base);

  algo::export_policy(policy, lora::LoraConfig{}, out);  // a first, complete export
  ASSERT_TRUE(stdfs::exists(out / "adapter_model.safetensors"));
  ASSERT_TRUE(stdfs::exists(out / "tokenizer_config.json"));
  const std::string before = fs::read_file(out / "adapter_config.json");

  stdfs::create_directories(base / "tokenizer.json");  // a directory: copying it as a file fails
  EXPECT_THROW(algo::export_policy(policy, lora::LoraConfig{}, out), Error);
  EXPECT_EQ(fs::read_file(out / "adapter_config.json"), before);
  EXPECT_TRUE(stdfs::exists(out / "tokenizer_config.json"));
  for (const auto& e : stdfs::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();

  // And a first export that fails leaves no directory behind.
  stdfs::remove_all(out);
  EXPECT_THROW(algo::export_policy(policy, lora::LoraConfig{}, out), Error);
  EXPECT_FALSE(stdfs::exists(out));
  stdfs::remove_all(root);
}

}  // namespace

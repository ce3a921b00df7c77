#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "tune/core/error.h"
#include "tune/model/config.h"

using tune::Json;
using namespace tune::model;

namespace {

Json llama_json() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
    "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    "torch_dtype": "bfloat16", "max_position_embeddings": 131072, "hidden_act": "silu"})");
}

std::string error_of(const Json& j) {
  try {
    ModelConfig::from_json(j, "dir/config.json");
  } catch (const tune::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelConfig, ParsesLlama32WithLlama3RopeScaling) {
  auto c = ModelConfig::from_json(llama_json());
  EXPECT_EQ(c.arch, Arch::llama);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_FALSE(c.layer_window(0));
  // Llama 3.2 1B has 1,235,814,400 parameters (tied embeddings).
  EXPECT_EQ(c.num_parameters(), 1235814400);
}

TEST(ModelConfig, LegacyTypeKeyAndDefaults) {
  Json j = llama_json();
  j["rope_scaling"] = Json::parse(R"({"type": "linear", "factor": 2.0})");
  j.erase("head_dim");
  j.erase("num_key_value_heads");
  auto c = ModelConfig::from_json(j);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
  EXPECT_EQ(c.head_dim, 2048 / 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
}

TEST(ModelConfig, TransformersV5RopeParameters) {
  Json j = llama_json();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = Json::parse(R"({"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  j["dtype"] = "float16";
  j.erase("torch_dtype");
  auto c = ModelConfig::from_json(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.torch_dtype, "float16");

  j["rope_parameters"] = Json::parse(R"({"rope_theta": 1000000.0, "rope_type": "default"})");
  c = ModelConfig::from_json(j);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, "default");
}

TEST(ModelConfig, ErrorsNameFileAndKey) {
  Json j = llama_json();
  j["model_type"] = "gpt_neox";
  auto msg = error_of(j);
  EXPECT_NE(msg.find("dir/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt_neox"), std::string::npos) << msg;

  j = llama_json();
  j.erase("hidden_size");
  msg = error_of(j);
  EXPECT_NE(msg.find("'hidden_size'"), std::string::npos) << msg;

  j = llama_json();
  j["rope_scaling"] = Json::parse(R"({"rope_type": "yarn", "factor": 4.0})");
  msg = error_of(j);
  EXPECT_NE(msg.find("rope_scaling.rope_type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("yarn"), std::string::npos) << msg;

  j = llama_json();
  j["num_key_value_heads"] = 5;
  msg = error_of(j);
  EXPECT_NE(msg.find("num_key_value_heads"), std::string::npos) << msg;

  j = llama_json();
  j["rope_scaling"].erase("low_freq_factor");
  msg = error_of(j);
  EXPECT_NE(msg.find("low_freq_factor"), std::string::npos) << msg;
}

TEST(ModelConfig, SlidingWindowRules) {
  Json q = Json::parse(R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2,
      "use_sliding_window": false, "sliding_window": 32, "max_window_layers": 2})");
  auto c = ModelConfig::from_json(q);
  for (int l = 0; l < 4; ++l) EXPECT_FALSE(c.layer_window(l)) << l;  // switched off: no window
  EXPECT_TRUE(c.qkv_bias());
  EXPECT_FALSE(c.o_bias());

  q["use_sliding_window"] = true;
  c = ModelConfig::from_json(q);
  EXPECT_FALSE(c.layer_window(1));
  EXPECT_EQ(c.layer_window(2), 32);
  EXPECT_EQ(c.layer_window(3), 32);

  q["layer_types"] = Json::parse(R"(["sliding_attention", "full_attention", "full_attention", "full_attention"])");
  c = ModelConfig::from_json(q);
  EXPECT_EQ(c.layer_window(0), 32);
  EXPECT_FALSE(c.layer_window(3));

  Json m = Json::parse(R"({"model_type": "mistral", "vocab_size": 10, "hidden_size": 8,
      "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "sliding_window": 7})");
  c = ModelConfig::from_json(m);
  EXPECT_EQ(c.layer_window(0), 7);
  EXPECT_EQ(c.layer_window(1), 7);
  m["sliding_window"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(m).layer_window(0));
}

TEST(ModelConfig, ToJsonRoundTrips) {
  for (const auto& name : preset_names()) {
    auto c = preset_config(name, name == "tiny" ? 300 : 0);
    auto back = ModelConfig::from_json(c.to_json());
    EXPECT_EQ(back.to_json().dump(), c.to_json().dump()) << name;
    EXPECT_EQ(c.to_json()["architectures"][0], std::string(arch_class_name(c.arch)));
  }
  auto tiny = preset_config("tiny", 300);
  EXPECT_EQ(tiny.vocab_size, 300);
  EXPECT_TRUE(tiny.tie_word_embeddings);
  // Qwen2.5-0.5B has 494,032,768 parameters.
  EXPECT_EQ(preset_config("qwen2.5-0.5b").num_parameters(), 494032768);
  EXPECT_THROW(preset_config("gpt5"), tune::UsageError);
}

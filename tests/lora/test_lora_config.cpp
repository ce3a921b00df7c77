#include <gtest/gtest.h>

#include <cmath>

#include "tune/core/config.h"
#include "tune/lora/config.h"

namespace tune::lora {
namespace {

LoraConfig bind_json(const char* text) { return config::bind<LoraConfig>(Json::parse(text), config::Sources{}); }

TEST(LoraConfig, DefaultsAndScale) {
  LoraConfig c;
  EXPECT_EQ(c.r, 8);
  EXPECT_DOUBLE_EQ(c.alpha, 16.0);
  EXPECT_DOUBLE_EQ(c.scale(), 2.0);  // alpha / r
  c.use_rslora = true;
  EXPECT_DOUBLE_EQ(c.scale(), 16.0 / std::sqrt(8.0));
  EXPECT_TRUE(c.all_linear());
  EXPECT_FALSE(c.layers().has_value());
}

TEST(LoraConfig, BindsFromTree) {
  auto c = bind_json(R"({"r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"], "layers_to_transform": [0, 2],
                        "init": "gaussian", "use_rslora": true})");
  EXPECT_EQ(c.r, 4);
  EXPECT_EQ(c.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  ASSERT_TRUE(c.layers().has_value());
  EXPECT_EQ(*c.layers(), (std::vector<int64_t>{0, 2}));
  EXPECT_DOUBLE_EQ(c.scale(), 8.0 / 2.0);
  // A single string and a single layer index are one-element lists, as in PEFT.
  auto single = bind_json(R"({"targets": "all-linear", "layers_to_transform": 1})");
  EXPECT_TRUE(single.all_linear());
  EXPECT_EQ(*single.layers(), (std::vector<int64_t>{1}));
  // The resolved config round-trips.
  EXPECT_EQ(config::to_json(bind_json(R"({"r": 4})"))["r"], 4);
}

TEST(LoraConfig, RejectsBadValuesNamingTheKey) {
  auto expect_error = [](const char* text, const char* key) {
    try {
      bind_json(text);
      ADD_FAILURE() << "no error for " << text;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"r": 0})", "r");
  expect_error(R"({"alpha": -1})", "alpha");
  expect_error(R"({"dropout": 1.5})", "dropout");
  expect_error(R"({"init": "pissa"})", "init");
  expect_error(R"({"targets": []})", "targets");
  expect_error(R"({"targets": ["all-linear", "q_proj"]})", "targets");
  expect_error(R"({"layers_to_transform": [0, -1]})", "layers_to_transform");
  expect_error(R"({"layers_to_transform": "0"})", "layers_to_transform");
  expect_error(R"({"rank": 8})", "rank");  // unknown key
  LoraConfig c;
  c.r = -2;
  EXPECT_THROW(c.validate(), UsageError);
}

TEST(LoraConfig, MatchesTargetsLikePeft) {
  const std::string q = "model.layers.0.self_attn.q_proj";
  EXPECT_TRUE(matches_targets({"q_proj"}, q));
  EXPECT_TRUE(matches_targets({"self_attn.q_proj"}, q));
  EXPECT_TRUE(matches_targets({q}, q));
  EXPECT_FALSE(matches_targets({"proj"}, q));     // suffix must start at a '.'
  EXPECT_FALSE(matches_targets({"_proj"}, q));
  EXPECT_FALSE(matches_targets({"k_proj", "v_proj"}, q));
  EXPECT_TRUE(matches_targets({"all-linear"}, "model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(matches_targets({"all-linear"}, "lm_head"));
  EXPECT_TRUE(matches_targets({"lm_head"}, "lm_head"));
}

TEST(LoraConfig, LayerIndexIsTheFirstNumberedComponent) {
  EXPECT_EQ(layer_index("model.layers.3.self_attn.q_proj"), 3);
  EXPECT_EQ(layer_index("model.layers.12.mlp.experts.4.up_proj"), 12);
  EXPECT_EQ(layer_index("lm_head"), std::nullopt);
  EXPECT_EQ(layer_index("model.layers.7"), std::nullopt);  // PEFT needs a component after the index
}

}  // namespace
}  // namespace tune::lora

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "support/error_text.h"
#include "lora_test_util.h"
#include "tune/core/fs.h"
#include "tune/io/safetensors.h"
#include "tune/lora/peft.h"

namespace tune::lora {
namespace {

namespace stdfs = std::filesystem;
using testing::tiny_ids;
using testing::tiny_model;

struct TempDir {
  stdfs::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = stdfs::temp_directory_path() / str("tune-lora-test-", ::getpid(), "-", n++);
    stdfs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    stdfs::remove_all(path, ec);
  }
};

// A model with trained-looking (non-zero B) adapters on q/v of both layers and on down_proj.
LoraSet adapted(model::CausalLM& m, LoraConfig& cfg) {
  torch::manual_seed(11);
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.targets = {"q_proj", "v_proj", "down_proj"};
  auto set = inject_lora(m, cfg);
  torch::NoGradGuard g;
  for (const auto& mod : set.modules()) mod.adapter->lora_B().normal_(0.0, 0.1);
  return set;
}

void write_adapter(const stdfs::path& dir, const Json& config, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  stdfs::create_directories(dir);
  write_json_file(dir / "adapter_config.json", config);
  std::vector<torch::Tensor> holders;
  std::vector<io::TensorBytes> entries;
  for (const auto& [name, t] : tensors) {
    holders.push_back(t.to(torch::kFloat32).contiguous());
    auto& h = holders.back();
    entries.push_back({name, io::DType::F32, std::vector<uint64_t>(h.sizes().begin(), h.sizes().end()),
                       {static_cast<const uint8_t*>(h.data_ptr()), static_cast<size_t>(h.nbytes())}});
  }
  io::write_safetensors(dir / "adapter_model.safetensors", entries, {{"format", "pt"}});
}

using test::error_of;

TEST(LoraPeft, SaveWritesPeftLayout) {
  TempDir tmp;
  auto m = tiny_model();
  LoraConfig cfg;
  auto set = adapted(*m, cfg);
  save_adapter(set, cfg, tmp.path / "adapter", "some/base");

  auto j = read_json_file(tmp.path / "adapter" / "adapter_config.json");
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 4);
  EXPECT_EQ(j["lora_alpha"], 8);
  EXPECT_EQ(j["target_modules"], Json::array({"down_proj", "q_proj", "v_proj"}));
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["use_rslora"], false);
  EXPECT_EQ(j["inference_mode"], true);
  EXPECT_EQ(j["fan_in_fan_out"], false);
  EXPECT_EQ(j["init_lora_weights"], true);
  EXPECT_EQ(j["base_model_name_or_path"], "some/base");

  auto file = io::SafetensorsFile::open(tmp.path / "adapter" / "adapter_model.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), 12u);  // 2 layers x 3 modules x (A, B)
  auto* b = file.find("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->shape, (std::vector<uint64_t>{32, 4}));
  EXPECT_EQ(b->dtype, io::DType::F32);
  auto* a = file.find("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{4, 48}));
  // No temporary directory is left beside the result.
  EXPECT_EQ(std::distance(stdfs::directory_iterator(tmp.path), stdfs::directory_iterator()), 1);
}

TEST(LoraPeft, RoundTripGivesIdenticalLogits) {
  TempDir tmp;
  auto m = tiny_model();
  LoraConfig cfg;
  cfg.use_rslora = true;
  auto set = adapted(*m, cfg);
  save_adapter(set, cfg, tmp.path / "adapter");
  auto fresh = tiny_model();
  auto loaded = load_adapter(*fresh, tmp.path / "adapter");
  ASSERT_EQ(loaded.modules().size(), set.modules().size());
  EXPECT_DOUBLE_EQ(loaded.modules()[0].adapter->scale(), 8.0 / 2.0);  // rsLoRA: alpha / sqrt(4)
  for (auto& p : fresh->parameters()) EXPECT_FALSE(p.requires_grad());
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(fresh->forward(tiny_ids()), m->forward(tiny_ids())));
}

TEST(LoraPeft, PatternsSetPerModuleRankAndAlpha) {
  Json j = {{"peft_type", "LORA"}, {"r", 8}, {"lora_alpha", 16}, {"rank_pattern", {{"v_proj", 2}}},
            {"alpha_pattern", {{"layers.1.self_attn.q_proj", 4}}}};
  auto c = PeftAdapterConfig::from_json(j, "adapter_config.json");
  EXPECT_EQ(c.rank_for("model.layers.0.self_attn.v_proj"), 2);
  EXPECT_EQ(c.rank_for("model.layers.0.self_attn.q_proj"), 8);
  EXPECT_DOUBLE_EQ(c.scale_for("model.layers.0.self_attn.v_proj"), 16.0 / 2.0);
  EXPECT_DOUBLE_EQ(c.scale_for("model.layers.1.self_attn.q_proj"), 4.0 / 8.0);
  EXPECT_DOUBLE_EQ(c.scale_for("model.layers.0.self_attn.q_proj"), 16.0 / 8.0);
  EXPECT_EQ(c.rank_for("model.layers.0.self_attn.xv_proj"), 8);  // a pattern matches whole components
}

TEST(LoraPeft, UnsupportedSettingsAreNamed) {
  Json base = {{"peft_type", "LORA"}, {"r", 4}, {"lora_alpha", 8}};
  auto with = [&](const char* key, Json value) {
    Json j = base;
    j[key] = value;
    return error_of([&] { PeftAdapterConfig::from_json(j, "x/adapter_config.json"); });
  };
  EXPECT_NE(with("use_dora", true).find("use_dora=true"), std::string::npos);
  EXPECT_NE(with("bias", "all").find("bias=\"all\""), std::string::npos);
  EXPECT_NE(with("modules_to_save", Json::array({"lm_head"})).find("modules_to_save"), std::string::npos);
  EXPECT_NE(with("peft_type", "IA3").find("only LORA"), std::string::npos);
  EXPECT_EQ(with("use_dora", false), "");
  EXPECT_EQ(with("modules_to_save", nullptr), "");
}

TEST(LoraPeft, LoadErrorsNameTheKey) {
  TempDir tmp;
  Json cfg = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}}};
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj";
  auto load_into_tiny = [&](const stdfs::path& dir) {
    return error_of([&] {
      auto m = tiny_model();
      load_adapter(*m, dir);
    });
  };
  write_adapter(tmp.path / "wrong_in", cfg, {{q + ".lora_A.weight", torch::zeros({2, 30})}, {q + ".lora_B.weight", torch::zeros({32, 2})}});
  auto e = load_into_tiny(tmp.path / "wrong_in");
  EXPECT_NE(e.find(q + ".lora_A.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("in_features 32"), std::string::npos) << e;

  write_adapter(tmp.path / "wrong_rank", cfg, {{q + ".lora_A.weight", torch::zeros({3, 32})}, {q + ".lora_B.weight", torch::zeros({32, 3})}});
  e = load_into_tiny(tmp.path / "wrong_rank");
  EXPECT_NE(e.find("rank 2"), std::string::npos) << e;

  write_adapter(tmp.path / "no_b", cfg, {{q + ".lora_A.weight", torch::zeros({2, 32})}});
  EXPECT_NE(load_into_tiny(tmp.path / "no_b").find("no matching"), std::string::npos);

  const std::string emb = "base_model.model.model.embed_tokens.lora_embedding_A";
  write_adapter(tmp.path / "emb", cfg, {{emb, torch::zeros({2, 61})}});
  e = load_into_tiny(tmp.path / "emb");
  EXPECT_NE(e.find(emb), std::string::npos) << e;
  EXPECT_NE(e.find("embedding LoRA"), std::string::npos) << e;

  const std::string other = "base_model.model.model.layers.0.self_attn.qq_proj";
  write_adapter(tmp.path / "other", cfg, {{other + ".lora_A.weight", torch::zeros({2, 32})}, {other + ".lora_B.weight", torch::zeros({32, 2})}});
  e = load_into_tiny(tmp.path / "other");
  EXPECT_NE(e.find("does not have"), std::string::npos) << e;

  EXPECT_NE(load_into_tiny(tmp.path / "missing").find("adapter_config.json is missing"), std::string::npos);
}

TEST(LoraPeft, MergedCopyMatchesAdapterAndLeavesModelAlone) {
  auto m = tiny_model();
  LoraConfig cfg;
  auto set = adapted(*m, cfg);
  std::vector<torch::Tensor> before;
  for (auto& p : m->parameters()) before.push_back(p.detach().clone());
  auto merged = merged_copy(*m, set);
  torch::NoGradGuard g;
  auto with_adapter = m->forward(tiny_ids());
  auto merged_logits = merged->forward(tiny_ids());
  EXPECT_TRUE(torch::allclose(merged_logits, with_adapter, 1e-5, 1e-5))
      << (merged_logits - with_adapter).abs().max().item<double>();
  for (const auto& p : merged->projections()) EXPECT_EQ(p.linear->adapter(), nullptr);
  auto params = m->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i]));
  EXPECT_EQ(set.modules()[0].linear->adapter(), set.modules()[0].adapter);
  // The merged weight is W + s B A.
  auto& mod = set.modules()[0];
  auto expected = mod.linear->weight() + (8.0 / 4.0) * torch::matmul(mod.adapter->lora_B(), mod.adapter->lora_A());
  EXPECT_TRUE(torch::allclose(merged->projections()[0].linear->weight(), expected, 1e-6, 1e-6));
}

TEST(LoraPeft, MergeToDirWritesAFullModel) {
  TempDir tmp;
  auto m = tiny_model();
  model::save_pretrained(*m, tmp.path / "base");
  fs::write_file_atomic(tmp.path / "base" / "tokenizer_config.json", "{\"model_max_length\": 64}");
  LoraConfig cfg;
  auto set = adapted(*m, cfg);
  save_adapter(set, cfg, tmp.path / "adapter");
  merge_adapter_to_dir(tmp.path / "base", tmp.path / "adapter", tmp.path / "merged");
  EXPECT_TRUE(stdfs::exists(tmp.path / "merged" / "tokenizer_config.json"));
  auto merged = model::load_pretrained(tmp.path / "merged");
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::allclose(merged->forward(tiny_ids()), m->forward(tiny_ids()), 1e-5, 1e-5));
  EXPECT_THROW(merge_adapter_to_dir(tmp.path / "base", tmp.path / "adapter", tmp.path / "base"), UsageError);
}

}  // namespace
}  // namespace tune::lora

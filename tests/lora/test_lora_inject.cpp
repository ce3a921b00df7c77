#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "tune/lora/inject.h"

namespace tune::lora {
namespace {

using testing::tiny_ids;
using testing::tiny_model;

// Next-token cross-entropy of the tiny batch, the loss the training-step tests minimise.
torch::Tensor lm_loss(model::CausalLM& m) {
  auto ids = tiny_ids();
  auto logits = m.forward(ids);  // [B, T, V]
  auto V = logits.size(-1);
  return torch::nn::functional::cross_entropy(logits.slice(1, 0, -1).reshape({-1, V}), ids.slice(1, 1).reshape({-1}));
}

TEST(LoraInject, AllLinearAdaptsEveryProjectionButLmHead) {
  auto m = tiny_model();
  torch::manual_seed(0);
  LoraConfig cfg;
  cfg.r = 4;
  auto set = inject_lora(*m, cfg);
  ASSERT_EQ(set.modules().size(), 14u);  // 2 layers x 7 projections
  EXPECT_EQ(set.modules()[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(set.modules()[13].name, "model.layers.1.mlp.down_proj");
  EXPECT_EQ(set.find("lm_head"), nullptr);
  for (auto& p : m->parameters()) EXPECT_FALSE(p.requires_grad());
  auto trainable = set.trainable();
  ASSERT_EQ(trainable.size(), 28u);
  EXPECT_EQ(trainable[0].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(trainable[1].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ(trainable[1].second.sizes(), (std::vector<int64_t>{32, 4}));  // q_proj out = 4 heads x 8
  // k_proj: in 32, out 2 kv heads x 8 = 16.
  EXPECT_EQ(set.find("model.layers.0.self_attn.k_proj")->adapter->lora_B().size(0), 16);
  // Per layer: q 4*(32+32) + k 4*(32+16) + v 4*(32+16) + o 4*(32+32) + gate/up 4*(32+48) x2 + down 4*(48+32).
  EXPECT_EQ(set.num_trainable(), 2 * 4 * (64 + 48 + 48 + 64 + 80 * 3));
  EXPECT_EQ(set.target_leaf_names(),
            (std::vector<std::string>{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));
  // B = 0: a fresh adapter changes nothing.
  torch::NoGradGuard g;
  auto base = tiny_model();
  EXPECT_TRUE(torch::equal(m->forward(tiny_ids()), base->forward(tiny_ids())));
}

TEST(LoraInject, TargetsAndLayerFilter) {
  auto m = tiny_model();
  LoraConfig cfg;
  cfg.targets = {"q_proj", "mlp.up_proj"};
  cfg.layers_to_transform = Json::array({1});
  auto set = inject_lora(*m, cfg);
  ASSERT_EQ(set.modules().size(), 2u);
  EXPECT_EQ(set.modules()[0].name, "model.layers.1.self_attn.q_proj");
  EXPECT_EQ(set.modules()[1].name, "model.layers.1.mlp.up_proj");

  auto head = tiny_model();
  LoraConfig lm;
  lm.targets = {"lm_head"};
  auto head_set = inject_lora(*head, lm);
  ASSERT_EQ(head_set.modules().size(), 1u);
  EXPECT_EQ(head_set.modules()[0].adapter->lora_B().size(0), 61);
}

TEST(LoraInject, ErrorsNameTheProblem) {
  auto expect_error = [](LoraConfig cfg, const std::string& needle) {
    auto m = tiny_model();
    try {
      inject_lora(*m, cfg);
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  LoraConfig typo;
  typo.targets = {"q_prj"};
  expect_error(typo, "did you mean 'q_proj'");
  LoraConfig deep;
  deep.layers_to_transform = Json::array({5});
  expect_error(deep, "layer 5");
  auto m = tiny_model();
  inject_lora(*m, LoraConfig{});
  EXPECT_THROW(inject_lora(*m, LoraConfig{}), UsageError);  // already adapted
}

TEST(LoraInject, TrainingLeavesBaseUntouchedAndDisabledIsTheBase) {
  auto m = tiny_model(3);
  std::vector<torch::Tensor> before;
  for (auto& p : m->parameters()) before.push_back(p.detach().clone());
  torch::manual_seed(0);
  LoraConfig cfg;
  cfg.r = 4;
  cfg.dropout = 0.1;
  auto set = inject_lora(*m, cfg);
  m->train();
  torch::optim::Adam opt(set.parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    auto loss = lm_loss(*m);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);  // the adapters learn
  auto params = m->parameters();
  ASSERT_EQ(params.size(), before.size());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i], before[i])) << "base parameter " << i << " changed";
    EXPECT_FALSE(params[i].grad().defined());
  }
  for (const auto& mod : set.modules()) EXPECT_GT(mod.adapter->lora_B().abs().max().item<double>(), 0.0);

  m->eval();
  torch::NoGradGuard g;
  auto reference = tiny_model(3);
  auto base_logits = reference->forward(tiny_ids());
  EXPECT_FALSE(torch::allclose(m->forward(tiny_ids()), base_logits, 1e-4, 1e-4));
  {
    model::AdaptersDisabled off;
    EXPECT_TRUE(torch::equal(m->forward(tiny_ids()), base_logits));
  }
  set.remove_from_model();
  EXPECT_TRUE(torch::equal(m->forward(tiny_ids()), base_logits));
}

TEST(LoraInject, GradientCheckpointingGivesTheSameAdapterGradients) {
  auto grads = [](bool checkpointing) {
    auto m = tiny_model(4);
    torch::manual_seed(0);
    LoraConfig cfg;
    cfg.r = 2;
    auto set = inject_lora(*m, cfg);
    {
      torch::NoGradGuard g;
      for (const auto& mod : set.modules()) mod.adapter->lora_B().normal_(0.0, 0.1);
    }
    m->set_gradient_checkpointing(checkpointing);
    m->train();
    lm_loss(*m).backward();
    std::vector<torch::Tensor> out;
    for (auto& t : set.parameters()) out.push_back(t.grad().clone());
    return out;
  };
  auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(torch::allclose(plain[i], recomputed[i], 1e-5, 1e-6)) << i;
}

// The shipped real-model LoRA configs train with dropout 0.05 and checkpointing on: the recompute
// in backward must draw the forward's dropout masks, or the gradient belongs to another network.
TEST(LoraInject, CheckpointingReplaysLoraDropout) {
  auto grads = [](bool checkpointing) {
    auto m = tiny_model(5, model::Arch::qwen2);
    LoraConfig cfg;  // the lora section of configs/sft/qwen2.5-0.5b-lora.yaml, dropout raised
    cfg.r = 16;
    cfg.alpha = 32;
    cfg.dropout = 0.1;
    torch::manual_seed(0);
    auto set = inject_lora(*m, cfg);
    {
      torch::NoGradGuard g;
      for (const auto& mod : set.modules()) mod.adapter->lora_B().normal_(0.0, 0.1);
    }
    m->set_gradient_checkpointing(checkpointing);
    m->train();
    torch::manual_seed(123);  // the same dropout masks in both runs' forward passes
    lm_loss(*m).backward();
    std::vector<torch::Tensor> out;
    for (auto& t : set.parameters()) out.push_back(t.grad().clone());
    return out;
  };
  auto plain = grads(false), recomputed = grads(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_TRUE(torch::allclose(plain[i], recomputed[i], 1e-5, 1e-7)) << "adapter tensor " << i;
}

// A loss computed under AdaptersDisabled and differentiated after the guard ended: the recompute
// must be the adapters-off network too.
TEST(LoraInject, CheckpointingReplaysTheAdapterMode) {
  auto grads = [](bool checkpointing) {
    auto m = tiny_model(6);
    torch::manual_seed(0);
    LoraConfig cfg;
    cfg.r = 4;
    auto set = inject_lora(*m, cfg);
    {
      torch::NoGradGuard g;
      for (const auto& mod : set.modules()) mod.adapter->lora_B().normal_(0.0, 0.5);
    }
    for (auto& p : m->parameters()) p.set_requires_grad(true);  // base weights get gradients too
    m->set_gradient_checkpointing(checkpointing);
    m->train();
    torch::Tensor loss;
    {
      model::AdaptersDisabled off;
      loss = lm_loss(*m);
    }
    loss.backward();
    auto w = m->named_parameters()["model.layers.0.self_attn.q_proj.weight"];
    return w.grad().clone();
  };
  EXPECT_TRUE(torch::allclose(grads(false), grads(true), 1e-5, 1e-7));
}

TEST(LoraInject, Bf16BaseKeepsFloat32Adapters) {
  auto m = std::make_shared<model::CausalLM>(testing::tiny_config(), torch::TensorOptions().dtype(torch::kBFloat16));
  model::init_random(*m, 1);
  torch::manual_seed(0);
  auto set = inject_lora(*m, LoraConfig{});
  for (const auto& mod : set.modules()) EXPECT_EQ(mod.adapter->lora_A().scalar_type(), torch::kFloat32);
  m->train();
  auto loss = lm_loss(*m);
  EXPECT_EQ(m->forward(tiny_ids()).scalar_type(), torch::kBFloat16);  // the delta joins in bf16
  loss.backward();
  auto& b = set.modules()[0].adapter->lora_B();
  ASSERT_TRUE(b.grad().defined());
  EXPECT_EQ(b.grad().scalar_type(), torch::kFloat32);
  EXPECT_GT(b.grad().abs().max().item<double>(), 0.0);  // B starts at zero; its gradient does not
}

}  // namespace
}  // namespace tune::lora

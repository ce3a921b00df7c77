// Decoder behaviour that needs no reference library: cache vs full forward, padding and packing
// invariances, checkpointing gradients, adapter slots (generation: tests/rollout).
// (Numerical parity with transformers lives in tests/parity/test_model.py.)
#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "tune/model/causal_lm.h"
#include "tune/model/weights.h"

using namespace tune::model;

namespace {

ModelConfig small_config(Arch arch = Arch::llama) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  if (arch == Arch::qwen3) c.head_dim = 24;  // head_dim override: q_proj outputs 96 != hidden 64
  if (arch == Arch::mistral) c.sliding_window = 4;
  c.initializer_range = 0.2;  // large enough that logits depend visibly on the input
  return c;
}

std::shared_ptr<CausalLM> random_model(ModelConfig c, uint64_t seed = 1) {
  auto m = std::make_shared<CausalLM>(c);
  init_random(*m, seed);
  m->eval();
  return m;
}

torch::Tensor random_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(1, V, {B, T}, gen, torch::kInt64);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

class ModelPerArch : public ::testing::TestWithParam<Arch> {};

}  // namespace

TEST_P(ModelPerArch, IncrementalDecodingMatchesFullForward) {
  torch::NoGradGuard no_grad;
  // fp64 shows the logic is exact; fp32 stays within 1e-5 relative to the logit scale.
  for (auto [dtype, tol] : {std::pair{torch::kFloat64, 1e-12}, std::pair{torch::kFloat32, 1e-5}}) {
    auto model = std::make_shared<CausalLM>(small_config(GetParam()), torch::TensorOptions().dtype(dtype));
    init_random(*model, 1);
    model->eval();
    auto ids = random_ids(2, 12, 97, 5);
    auto full = model->forward(ids);  // [2, 12, V]
    KVCache cache = model->make_cache(2, 16);
    std::vector<torch::Tensor> pieces;
    int64_t t = 0;
    for (int64_t chunk : {5, 1, 3, 1, 1, 1}) {
      ForwardArgs args;
      args.input_ids = ids.narrow(1, t, chunk);
      args.cache = &cache;
      pieces.push_back(model->forward(args));
      t += chunk;
    }
    EXPECT_EQ(cache.length(), 12);
    const double scale = std::max(1.0, full.abs().max().item<double>());
    EXPECT_LT(max_diff(torch::cat(pieces, 1), full) / scale, tol) << dtype;
  }
}

TEST_P(ModelPerArch, LeftAndRightPaddingGiveTheUnpaddedLogits) {
  torch::NoGradGuard no_grad;
  auto model = random_model(small_config(GetParam()));
  auto a = random_ids(1, 7, 97, 11);
  auto b = random_ids(1, 4, 97, 12);
  auto alone_a = model->forward(a);
  auto alone_b = model->forward(b);
  for (bool left : {true, false}) {
    auto pad = torch::zeros({1, 3}, torch::kInt64);
    ForwardArgs args;
    args.input_ids = torch::cat({a, left ? torch::cat({pad, b}, 1) : torch::cat({b, pad}, 1)}, 0);
    auto mask_b = left ? torch::cat({torch::zeros({1, 3}), torch::ones({1, 4})}, 1)
                       : torch::cat({torch::ones({1, 4}), torch::zeros({1, 3})}, 1);
    args.attention_mask = torch::cat({torch::ones({1, 7}), mask_b}, 0).to(torch::kInt64);
    auto logits = model->forward(args);
    EXPECT_FALSE(logits.isnan().any().item<bool>());
    EXPECT_LT(max_diff(logits.narrow(0, 0, 1), alone_a), 1e-5);
    EXPECT_LT(max_diff(logits.narrow(0, 1, 1).narrow(1, left ? 3 : 0, 4), alone_b), 1e-5) << "left=" << left;
  }
}

TEST_P(ModelPerArch, PackedSequencesEqualSeparateForwards) {
  torch::NoGradGuard no_grad;
  auto model = random_model(small_config(GetParam()));
  std::vector<torch::Tensor> samples = {random_ids(1, 5, 97, 21), random_ids(1, 3, 97, 22), random_ids(1, 6, 97, 23)};
  std::vector<int64_t> sample_ids;
  for (size_t s = 0; s < samples.size(); ++s)
    sample_ids.insert(sample_ids.end(), samples[s].size(1), static_cast<int64_t>(s));
  ForwardArgs args;
  args.input_ids = torch::cat(samples, 1);
  args.sample_ids = torch::tensor(sample_ids, torch::kInt64).unsqueeze(0);
  auto packed = model->forward(args);
  int64_t start = 0;
  for (const auto& s : samples) {
    EXPECT_LT(max_diff(packed.narrow(1, start, s.size(1)), model->forward(s)), 1e-5);
    start += s.size(1);
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, ModelPerArch, ::testing::Values(Arch::llama, Arch::qwen2, Arch::qwen3, Arch::mistral),
                         [](const auto& info) { return std::string(arch_name(info.param)); });

namespace {

// delta = x A^T B^T with fixed A, B (a LoRA-shaped adapter for the tests).
class TestAdapter : public Adapter {
 public:
  TestAdapter(int64_t in, int64_t out, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    A = (torch::randn({2, in}, gen) * 0.1).requires_grad_(true);
    B = (torch::randn({out, 2}, gen) * 0.1).requires_grad_(true);
  }
  torch::Tensor forward(const torch::Tensor& x) override { return torch::matmul(torch::matmul(x, A.t()), B.t()); }
  torch::Tensor A, B;
};

}  // namespace

TEST(ModelAdapters, SlotsAreNamedAndDisabledByTheGuard) {
  auto config = small_config();
  auto model = random_model(config);
  auto projections = model->projections();
  ASSERT_EQ(projections.size(), 2u * 7 + 1);
  EXPECT_EQ(projections[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(projections[0].out_features, 4 * 16);
  EXPECT_EQ(projections[1].name, "model.layers.0.self_attn.k_proj");
  EXPECT_EQ(projections[1].out_features, 2 * 16);
  EXPECT_EQ(projections[13].name, "model.layers.1.mlp.down_proj");
  EXPECT_EQ(projections[13].in_features, 96);
  EXPECT_EQ(projections.back().name, "lm_head");
  EXPECT_EQ(projections.back().out_features, 97);

  torch::NoGradGuard no_grad;
  auto ids = random_ids(1, 6, 97, 3);
  auto base = model->forward(ids);
  auto adapter = std::make_shared<TestAdapter>(64, 64, 9);
  projections[3].linear->set_adapter(adapter);  // o_proj of layer 0
  auto adapted = model->forward(ids);
  EXPECT_GT(max_diff(adapted, base), 1e-3);
  {
    AdaptersDisabled off;
    EXPECT_TRUE(AdaptersDisabled::active());
    EXPECT_EQ(max_diff(model->forward(ids), base), 0.0);
  }
  EXPECT_FALSE(AdaptersDisabled::active());
  EXPECT_EQ(max_diff(model->forward(ids), adapted), 0.0);
}

TEST(ModelCheckpointing, GradientsMatchTheStoredGraph) {
  for (bool frozen_base : {false, true}) {
    auto model = random_model(small_config(Arch::qwen3));
    model->train();
    auto adapter = std::make_shared<TestAdapter>(64, 96, 4);
    model->projections()[0].linear->set_adapter(adapter);  // q_proj of layer 0: [96, 64]
    for (auto& p : model->parameters()) p.set_requires_grad(!frozen_base);
    auto ids = random_ids(2, 9, 97, 8);
    auto run = [&](bool checkpoint) {
      model->set_gradient_checkpointing(checkpoint);
      model->zero_grad();
      adapter->A.mutable_grad() = torch::Tensor();
      adapter->B.mutable_grad() = torch::Tensor();
      auto loss = model->forward(ids).log_softmax(-1).select(-1, 3).mean();
      loss.backward();
      std::vector<torch::Tensor> grads = {adapter->A.grad().clone(), adapter->B.grad().clone()};
      if (!frozen_base)
        for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
      return grads;
    };
    auto stored = run(false);
    auto recomputed = run(true);
    ASSERT_EQ(stored.size(), recomputed.size());
    for (size_t i = 0; i < stored.size(); ++i) {
      EXPECT_GT(stored[i].abs().max().item<double>(), 0) << i;
      EXPECT_LT(max_diff(stored[i], recomputed[i]), 1e-6) << "gradient " << i << " frozen=" << frozen_base;
    }
  }
}

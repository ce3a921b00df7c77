#include <gtest/gtest.h>

#include <cmath>

#include "tune/core/error.h"
#include "tune/lora/adapter.h"
#include "tune/model/linear.h"

namespace tune::lora {
namespace {

TEST(LoraAdapter, DefaultInitIsKaimingUniformAndZeroB) {
  torch::manual_seed(0);
  LoraAdapter a(/*in=*/400, /*out=*/30, /*r=*/16, /*scale=*/2.0, 0.0, "default");
  EXPECT_EQ(a.lora_A().sizes(), (std::vector<int64_t>{16, 400}));
  EXPECT_EQ(a.lora_B().sizes(), (std::vector<int64_t>{30, 16}));
  EXPECT_EQ(a.lora_A().scalar_type(), torch::kFloat32);
  // kaiming_uniform(a=sqrt 5): U(-1/sqrt(in), 1/sqrt(in)); variance bound^2/3.
  double bound = 1.0 / std::sqrt(400.0);
  EXPECT_LE(a.lora_A().abs().max().item<double>(), bound);
  EXPECT_GT(a.lora_A().abs().max().item<double>(), 0.95 * bound);
  EXPECT_NEAR(a.lora_A().var().item<double>(), bound * bound / 3.0, 0.1 * bound * bound / 3.0);
  EXPECT_EQ(a.lora_B().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(a.lora_A().requires_grad());
  EXPECT_TRUE(a.lora_B().requires_grad());
}

TEST(LoraAdapter, GaussianInitHasStdOneOverR) {
  torch::manual_seed(0);
  LoraAdapter a(2000, 8, 4, 1.0, 0.0, "gaussian");
  EXPECT_NEAR(a.lora_A().std().item<double>(), 0.25, 0.01);
  EXPECT_NEAR(a.lora_A().mean().item<double>(), 0.0, 0.01);
}

TEST(LoraAdapter, ForwardIsScaledLowRankProduct) {
  LoraAdapter a(3, 2, 2, /*scale=*/0.5, 0.0, "none");
  // Hand-worked: A = [[1,0,2],[0,1,0]], B = [[1,1],[2,-1]], x = [1,2,3]
  // A x = [7, 2]; B (A x) = [9, 12]; * 0.5 = [4.5, 6]. B A = [[1,1,2],[2,-1,4]].
  a.assign(torch::tensor({1., 0., 2., 0., 1., 0.}).view({2, 3}), torch::tensor({1., 1., 2., -1.}).view({2, 2}), "test");
  auto y = a.forward(torch::tensor({1., 2., 3.}).view({1, 3}));
  EXPECT_TRUE(torch::equal(y, torch::tensor({4.5, 6.0}, torch::kFloat32).view({1, 2})));
  EXPECT_TRUE(torch::equal(a.delta_weight(), torch::tensor({0.5, 0.5, 1.0, 1.0, -0.5, 2.0}).view({2, 3}).to(torch::kFloat32)));
  EXPECT_THROW(a.assign(torch::zeros({2, 4}), torch::zeros({2, 2}), "bad"), Error);
}

TEST(LoraAdapter, Bf16InputGivesBf16DeltaAndFp32Gradients) {
  torch::manual_seed(1);
  LoraAdapter a(8, 6, 2, 2.0, 0.0, "default");
  {
    torch::NoGradGuard g;
    a.lora_B().normal_();
  }
  auto x = torch::randn({4, 8}).to(torch::kBFloat16);
  auto y = a.forward(x);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  auto ref = torch::matmul(torch::matmul(x.to(torch::kFloat32), a.lora_A().t()), a.lora_B().t()) * 2.0;
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat32), ref.detach(), 5e-2, 5e-2));
  y.to(torch::kFloat32).sum().backward();
  ASSERT_TRUE(a.lora_A().grad().defined());
  EXPECT_EQ(a.lora_A().grad().scalar_type(), torch::kFloat32);
  EXPECT_EQ(a.lora_B().grad().scalar_type(), torch::kFloat32);
}

TEST(LoraAdapter, DropoutFollowsTheHostTrainingMode) {
  auto host = std::make_shared<model::Linear>(16, 16, false);
  auto a = std::make_shared<LoraAdapter>(16, 16, 4, 1.0, /*dropout=*/0.5, "default");
  {
    torch::NoGradGuard g;
    a->lora_B().normal_();
  }
  a->set_host(host);
  auto x = torch::randn({8, 16});
  host->eval();
  auto e1 = a->forward(x), e2 = a->forward(x);
  EXPECT_TRUE(torch::equal(e1, e2));  // eval: no dropout, deterministic
  host->train();
  torch::manual_seed(5);
  auto t1 = a->forward(x);
  EXPECT_FALSE(torch::allclose(t1, e1));
  // Same generator state: the adapter's delta is the eval-mode delta of x after inverted dropout.
  torch::manual_seed(5);
  auto dropped = torch::dropout(x, 0.5, true);
  host->eval();
  EXPECT_TRUE(torch::allclose(t1, a->forward(dropped), 1e-6, 1e-6));
}

TEST(LoraAdapter, DisabledGuardSkipsTheAdapterInLinear) {
  auto lin = std::make_shared<model::Linear>(4, 3, true);
  {
    torch::NoGradGuard g;
    lin->weight().normal_();
    lin->bias().normal_();
  }
  auto a = std::make_shared<LoraAdapter>(4, 3, 2, 1.0, 0.0, "default");
  {
    torch::NoGradGuard g;
    a->lora_B().fill_(0.3);
  }
  auto x = torch::randn({2, 4});
  auto base = lin->forward(x);
  lin->set_adapter(a);
  auto with = lin->forward(x);
  EXPECT_TRUE(torch::allclose(with, base + a->forward(x), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(with, base));
  model::AdaptersDisabled off;
  EXPECT_TRUE(torch::equal(lin->forward(x), base));
}

}  // namespace
}  // namespace tune::lora

// The tune::ops kernel path on CUDA tensors (src/ops/cuda_*.cpp -> kernels/) against the same ops'
// LibTorch reference on the CPU, values and gradients. Compiled into tune_tests only in a build with
// nvcc and a CUDA LibTorch; skipped when no CUDA device is present.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tune/ops/advantages.h"
#include "tune/ops/dispatch.h"
#include "tune/ops/kl.h"
#include "tune/ops/token_logprob.h"

namespace {

using torch::Tensor;
namespace ops = tune::ops;

#define REQUIRE_GPU()                                                    \
  do {                                                                   \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";  \
    ASSERT_TRUE(ops::cuda_kernels_available()) << "TUNE_DISABLE_CUDA_KERNELS is set"; \
  } while (0)

void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  Tensor g = got.detach().to(torch::kCPU, torch::kFloat64), w = want.detach().to(torch::kCPU, torch::kFloat64);
  ASSERT_EQ(g.sizes(), w.sizes()) << what;
  const double err = (g - w).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(g, w, rtol, atol)) << what << ": max abs err " << err << " (rtol " << rtol << ", atol "
                                                 << atol << ")";
}

Tensor labels_for(int64_t n, int64_t v) {
  Tensor y = torch::randint(0, v, {n}, torch::kLong);
  for (int64_t i = 3; i < n; i += 5) y[i] = ops::kIgnoreIndex;
  if (n > 1) y[1] = v - 1;
  return y;
}

struct LogprobCase {
  int64_t n, v;
  torch::ScalarType dtype;
  double temperature;
};

class CudaTokenLogprob : public ::testing::TestWithParam<LogprobCase> {};

TEST_P(CudaTokenLogprob, MatchesReferenceValuesAndGradients) {
  REQUIRE_GPU();
  const auto c = GetParam();
  torch::manual_seed(c.n * 7919 + c.v);
  Tensor base = (torch::randn({c.n, c.v}) * 3).to(c.dtype);  // [N, V]
  Tensor y = labels_for(c.n, c.v);
  Tensor w_lp = torch::randn({c.n}), w_ent = torch::randn({c.n});
  ops::TokenLogprobOptions opt;
  opt.temperature = c.temperature;
  opt.compute_entropy = true;

  Tensor x_cpu = base.clone().requires_grad_(true);
  auto ref = ops::token_logprob(x_cpu, y, opt);
  ((ref.logprob * w_lp).sum() + (ref.entropy * w_ent).sum()).backward();

  Tensor x_gpu = base.to(torch::kCUDA).requires_grad_(true);
  auto got = ops::token_logprob(x_gpu, y.to(torch::kCUDA), opt);
  ((got.logprob * w_lp.cuda()).sum() + (got.entropy * w_ent.cuda()).sum()).backward();

  expect_close(got.logprob, ref.logprob, 2e-5, 2e-4, "logprob");
  expect_close(got.entropy, ref.entropy, 2e-5, 2e-4, "entropy");
  ASSERT_EQ(x_gpu.grad().scalar_type(), c.dtype);
  // Both gradients are rounded to the logits' dtype: one bf16 ulp is a relative 2^-8.
  const double rtol = c.dtype == torch::kFloat32 ? 1e-4 : 1e-2;
  expect_close(x_gpu.grad(), x_cpu.grad(), rtol, 1e-8, "grad_logits");  // entries ~ p ~ 1e-5
}

INSTANTIATE_TEST_SUITE_P(Sizes, CudaTokenLogprob,
                         ::testing::Values(LogprobCase{1, 32000, torch::kFloat32, 1.0},
                                           LogprobCase{13, 32001, torch::kFloat32, 0.7},
                                           LogprobCase{13, 151936, torch::kFloat32, 1.0},
                                           LogprobCase{13, 32001, torch::kBFloat16, 1.0},
                                           LogprobCase{5, 151936, torch::kBFloat16, 1.3}));

TEST(CudaTokenLogprob, AllIgnoredRowsGiveZerosAndZeroGradient) {
  REQUIRE_GPU();
  Tensor x = torch::randn({4, 32001}, torch::kCUDA).requires_grad_(true);
  Tensor y = torch::full({4}, ops::kIgnoreIndex, torch::dtype(torch::kLong).device(torch::kCUDA));
  auto r = ops::token_logprob(x, y, {.compute_entropy = true});
  (r.logprob.sum() + r.entropy.sum()).backward();
  EXPECT_EQ(r.logprob.abs().sum().item<float>(), 0.f);
  EXPECT_EQ(r.entropy.abs().sum().item<float>(), 0.f);
  EXPECT_EQ(x.grad().abs().sum().item<float>(), 0.f);
}

TEST(CudaTokenLogprob, FromHiddenMatchesReference) {
  REQUIRE_GPU();
  torch::manual_seed(3);
  const int64_t n = 13, h = 64, v = 32001;
  Tensor hidden = torch::randn({n, h}), weight = torch::randn({v, h}) * 0.2;
  Tensor y = labels_for(n, v), w = torch::randn({n});
  ops::TokenLogprobOptions opt;
  opt.chunk_rows = 5;  // chunks of 5, 5, 3 rows
  opt.compute_entropy = true;

  Tensor hc = hidden.clone().requires_grad_(true), wc = weight.clone().requires_grad_(true);
  auto ref = ops::token_logprob_from_hidden(hc, wc, y, opt);
  ((ref.logprob * w).sum() + ref.entropy.sum()).backward();

  Tensor hg = hidden.cuda().requires_grad_(true), wg = weight.cuda().requires_grad_(true);
  auto got = ops::token_logprob_from_hidden(hg, wg, y.cuda(), opt);
  ((got.logprob * w.cuda()).sum() + got.entropy.sum()).backward();

  // cuBLAS and the CPU BLAS sum H = 64 products in different orders (TF32 is off by default).
  expect_close(got.logprob, ref.logprob, 1e-4, 1e-4, "logprob");
  expect_close(got.entropy, ref.entropy, 1e-4, 1e-4, "entropy");
  expect_close(hg.grad(), hc.grad(), 1e-3, 1e-4, "grad_hidden");
  expect_close(wg.grad(), wc.grad(), 1e-3, 1e-4, "grad_weight");
}

TEST(CudaRlOps, KlEstimatorsAndGradientsMatchReference) {
  REQUIRE_GPU();
  torch::manual_seed(5);
  Tensor logp = torch::randn({5, 17}) - 2, ref_logp = logp + 0.3 * torch::randn({5, 17});
  Tensor mask = torch::rand({5, 17}) > 0.3;
  mask[1] = false;  // a fully masked row
  for (auto kind : {ops::KlKind::k1, ops::KlKind::k2, ops::KlKind::k3}) {
    Tensor a = logp.clone().requires_grad_(true), b = ref_logp.clone().requires_grad_(true);
    Tensor want = ops::kl_penalty(a, b, mask, kind);
    want.sum().backward();
    Tensor ag = logp.cuda().requires_grad_(true), bg = ref_logp.cuda().requires_grad_(true);
    Tensor got = ops::kl_penalty(ag, bg, mask.cuda(), kind);
    got.sum().backward();
    const std::string name(ops::kl_kind_name(kind));
    expect_close(got, want, 1e-5, 1e-6, name);
    expect_close(ag.grad(), a.grad(), 1e-5, 1e-6, name + " grad logp");
    expect_close(bg.grad(), b.grad(), 1e-5, 1e-6, name + " grad ref_logp");
  }
}

TEST(CudaRlOps, GaeMatchesReference) {
  REQUIRE_GPU();
  torch::manual_seed(7);
  Tensor r = torch::randn({6, 41}), v = torch::randn({6, 41});
  Tensor mask = (torch::rand({6, 41}) > 0.25).to(torch::kFloat32);
  mask[2] = 0;  // fully masked
  mask[0] = 1;  // fully valid
  auto want = ops::gae(r, v, mask, 0.99, 0.95);
  auto got = ops::gae(r.cuda(), v.cuda(), mask.cuda(), 0.99, 0.95);
  expect_close(got.advantages, want.advantages, 1e-5, 1e-5, "advantages");
  expect_close(got.returns, want.returns, 1e-5, 1e-5, "returns");
}

TEST(CudaRlOps, GroupAdvantagesMatchReference) {
  REQUIRE_GPU();
  torch::manual_seed(11);
  for (int64_t g : {1, 4, 16}) {
    Tensor r = torch::rand({6 * g}).round() + 0.25 * torch::randn({6 * g});
    for (bool scale : {true, false}) {
      expect_close(ops::group_advantages(r.cuda(), g, scale), ops::group_advantages(r, g, scale), 1e-4, 1e-5,
                   "group " + std::to_string(g) + (scale ? " scaled" : " unscaled"));
    }
  }
}

}  // namespace

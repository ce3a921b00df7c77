// token_logprob against the plain LibTorch formula log_softmax(logits / T).gather(labels), values and
// gradients through autograd, at awkward sizes, with chunking forced small so chunk edges are crossed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tune/core/error.h"
#include "tune/ops/token_logprob.h"

namespace {

using torch::Tensor;
using tune::ops::TokenLogprobOptions;

// Reference: full float32 log-softmax; 0 at ignored rows. Differentiable through autograd.
struct Reference {
  Tensor logprob, entropy;
};

Reference reference(const Tensor& logits, const Tensor& labels, double temperature) {
  Tensor valid = labels != -100;
  Tensor z = logits.to(torch::kFloat32) / temperature;
  Tensor logp = torch::log_softmax(z, -1);  // [N, V]
  Tensor safe = torch::where(valid, labels, torch::zeros_like(labels));
  Tensor lp = logp.gather(1, safe.unsqueeze(1)).squeeze(1);
  Tensor h = -(logp.exp() * logp).sum(-1);
  Tensor zero = torch::zeros({}, lp.options());
  return {torch::where(valid, lp, zero), torch::where(valid, h, zero)};
}

Tensor random_labels(int64_t n, int64_t vocab, bool with_ignored) {
  Tensor labels = torch::randint(vocab, {n}, torch::kLong);
  if (with_ignored && n > 2) {
    labels[0] = -100;
    labels[n / 2] = -100;
  }
  return labels;
}

// max |a - b| <= atol + rtol * max|b|, reported with the worst position.
void expect_close(const Tensor& actual, const Tensor& expected, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  Tensor a = actual.to(torch::kFloat64), e = expected.to(torch::kFloat64);
  double err = (a - e).abs().max().item<double>();
  double scale = e.abs().max().item<double>();
  EXPECT_LE(err, atol + rtol * scale) << what << ": max abs error " << err << " (max |expected| " << scale << ")";
}

struct LogprobCase {
  int64_t n, vocab, chunk_rows;
  torch::ScalarType dtype;
  double temperature;
  bool entropy;
};

std::string name_of(const LogprobCase& c) {
  return tune::str("N=", c.n, " V=", c.vocab, " chunk=", c.chunk_rows, " dtype=", c.dtype, " T=", c.temperature,
                   " entropy=", c.entropy);
}

void check_logits_case(const LogprobCase& c) {
  torch::manual_seed(1234 + c.n * 7 + c.vocab);
  Tensor base = torch::randn({c.n, c.vocab}) * 3;
  Tensor labels = random_labels(c.n, c.vocab, true);
  Tensor w_lp = torch::randn({c.n}), w_h = torch::randn({c.n});
  const bool bf16 = c.dtype == torch::kBFloat16;
  // Values: the same float32 arithmetic on the same (rounded) inputs; gradients of bf16 logits are
  // rounded to bf16 by both sides, so they may differ by one bf16 ulp (2^-8 relative).
  const double val_atol = 2e-5, grad_atol = bf16 ? 1e-3 : 1e-6, grad_rtol = bf16 ? 8e-3 : 1e-5;

  Tensor x = base.to(c.dtype).requires_grad_(true);
  TokenLogprobOptions opt;
  opt.temperature = c.temperature;
  opt.compute_entropy = c.entropy;
  opt.chunk_rows = c.chunk_rows;
  auto got = tune::ops::token_logprob(x, labels, opt);
  ASSERT_EQ(got.logprob.scalar_type(), torch::kFloat32);
  Tensor loss = (got.logprob * w_lp).sum();
  if (c.entropy) loss = loss + (got.entropy * w_h).sum();
  loss.backward();

  Tensor y = base.to(c.dtype).requires_grad_(true);
  auto ref = reference(y, labels, c.temperature);
  Tensor ref_loss = (ref.logprob * w_lp).sum();
  if (c.entropy) ref_loss = ref_loss + (ref.entropy * w_h).sum();
  ref_loss.backward();

  expect_close(got.logprob, ref.logprob, val_atol, 1e-6, name_of(c) + " logprob");
  if (c.entropy) expect_close(got.entropy, ref.entropy, val_atol, 1e-6, name_of(c) + " entropy");
  ASSERT_EQ(x.grad().scalar_type(), c.dtype);
  expect_close(x.grad(), y.grad(), grad_atol, grad_rtol, name_of(c) + " grad");
  // Ignored rows: exactly 0 output and 0 gradient.
  if (c.n > 2) {
    EXPECT_EQ(got.logprob[0].item<float>(), 0.0f);
    EXPECT_EQ(x.grad()[0].abs().max().item<float>(), 0.0f);
  }
}

TEST(TokenLogprob, MatchesLogSoftmaxGatherAtOddSizes) {
  for (int64_t vocab : {1, 7, 1001, 32001})
    for (int64_t n : {1, 13})
      for (auto dtype : {torch::kFloat32, torch::kBFloat16})
        for (int64_t chunk : {0, 4}) check_logits_case({n, vocab, chunk, dtype, 1.0, false});
}

TEST(TokenLogprob, TemperatureAndEntropyWithGradients) {
  for (int64_t vocab : {7, 1001})
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      check_logits_case({13, vocab, 5, dtype, 0.7, true});
      check_logits_case({13, vocab, 0, dtype, 1.0, true});
    }
  check_logits_case({1, 1, 0, torch::kFloat32, 2.0, true});
}

TEST(TokenLogprob, AllIgnoredRowsGiveZerosAndZeroGrad) {
  Tensor x = torch::randn({13, 7}, torch::requires_grad());
  Tensor labels = torch::full({13}, -100, torch::kLong);
  TokenLogprobOptions opt;
  opt.compute_entropy = true;
  auto got = tune::ops::token_logprob(x, labels, opt);
  EXPECT_TRUE(torch::equal(got.logprob, torch::zeros({13})));
  EXPECT_TRUE(torch::equal(got.entropy, torch::zeros({13})));
  (got.logprob.sum() + got.entropy.sum()).backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::zeros({13, 7})));
}

TEST(TokenLogprob, VocabularyOfOneIsCertain) {
  Tensor x = torch::randn({5, 1});
  auto got = tune::ops::token_logprob(x, torch::zeros({5}, torch::kLong));
  EXPECT_TRUE(torch::equal(got.logprob, torch::zeros({5})));
}

TEST(TokenLogprob, MinusInfinityLogitsStayFinite) {
  // Hand-worked: logits [0, 0, -inf], label 0 -> logp = log 1/2, entropy = log 2,
  // d logp / d logits = onehot - p = [0.5, -0.5, 0].
  float inf = std::numeric_limits<float>::infinity();
  Tensor x = torch::tensor({0.0f, 0.0f, -inf}).view({1, 3}).requires_grad_(true);
  TokenLogprobOptions opt;
  opt.compute_entropy = true;
  auto got = tune::ops::token_logprob(x, torch::zeros({1}, torch::kLong), opt);
  EXPECT_NEAR(got.logprob.item<float>(), std::log(0.5), 1e-7);
  EXPECT_NEAR(got.entropy.item<float>(), std::log(2.0), 1e-7);
  got.logprob.sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), torch::tensor({0.5f, -0.5f, 0.0f}).view({1, 3})));
}

TEST(TokenLogprob, DefaultChunkRowsKeepsChunkUnder256MiB) {
  EXPECT_EQ(tune::ops::default_chunk_rows(32768), 2048);  // 2048 * 32768 * 4 B = 256 MiB
  EXPECT_EQ(tune::ops::default_chunk_rows(151936), 441);  // floor(2^28 / (151936 * 4))
  EXPECT_EQ(tune::ops::default_chunk_rows(int64_t{1} << 40), 1);
}

void check_hidden_case(int64_t n, int64_t hidden, int64_t vocab, int64_t chunk, torch::ScalarType dtype, bool entropy) {
  torch::manual_seed(99 + n + vocab);
  Tensor h0 = torch::randn({n, hidden}), w0 = torch::randn({vocab, hidden}) * 0.3;
  Tensor labels = random_labels(n, vocab, true);
  Tensor w_lp = torch::randn({n}), w_h = torch::randn({n});
  Tensor h = h0.to(dtype).requires_grad_(true), w = w0.to(dtype).requires_grad_(true);
  TokenLogprobOptions opt;
  opt.chunk_rows = chunk;
  opt.compute_entropy = entropy;
  opt.temperature = 0.9;
  auto got = tune::ops::token_logprob_from_hidden(h, w, labels, opt);
  Tensor loss = (got.logprob * w_lp).sum();
  if (entropy) loss = loss + (got.entropy * w_h).sum();
  loss.backward();

  Tensor rh = h0.to(dtype).requires_grad_(true), rw = w0.to(dtype).requires_grad_(true);
  auto ref = reference(rh.matmul(rw.t()), labels, 0.9);
  Tensor ref_loss = (ref.logprob * w_lp).sum();
  if (entropy) ref_loss = ref_loss + (ref.entropy * w_h).sum();
  ref_loss.backward();

  const bool bf16 = dtype == torch::kBFloat16;
  std::string what = tune::str("hidden N=", n, " H=", hidden, " V=", vocab, " chunk=", chunk, " ", dtype);
  expect_close(got.logprob, ref.logprob, bf16 ? 1e-4 : 2e-5, 1e-6, what + " logprob");
  if (entropy) expect_close(got.entropy, ref.entropy, bf16 ? 1e-4 : 2e-5, 1e-6, what + " entropy");
  // bf16: both sides round the [N, V] gradient to bf16 before the matmuls, and the reference
  // rounds its weight gradient once more; allow a few bf16 ulps of the largest entry.
  expect_close(h.grad(), rh.grad(), bf16 ? 0 : 1e-5, bf16 ? 3e-2 : 1e-5, what + " grad hidden");
  expect_close(w.grad(), rw.grad(), bf16 ? 0 : 1e-5, bf16 ? 3e-2 : 1e-5, what + " grad weight");
}

TEST(TokenLogprob, FromHiddenMatchesMatmulThenLogSoftmax) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    check_hidden_case(13, 16, 1001, 4, dtype, false);
    check_hidden_case(13, 16, 1001, 0, dtype, true);
    check_hidden_case(1, 8, 7, 0, dtype, true);
    check_hidden_case(13, 5, 32001, 6, dtype, false);
  }
}

TEST(TokenLogprob, FromHiddenWithFrozenWeightSkipsItsGradient) {
  Tensor h = torch::randn({4, 3}, torch::requires_grad());
  Tensor w = torch::randn({7, 3});  // frozen LM head (LoRA)
  auto got = tune::ops::token_logprob_from_hidden(h, w, torch::tensor({1, 2, 3, 4}, torch::kLong));
  got.logprob.sum().backward();
  EXPECT_TRUE(h.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(TokenLogprob, RejectsBadInputsWithClearErrors) {
  auto expect_error = [](auto fn, const std::string& fragment) {
    try {
      fn();
      ADD_FAILURE() << "expected an error containing '" << fragment << "'";
    } catch (const tune::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  Tensor x = torch::randn({3, 5});
  expect_error([&] { tune::ops::token_logprob(x, torch::zeros({3}, torch::kInt)); }, "must be int64");
  expect_error([&] { tune::ops::token_logprob(x, torch::zeros({4}, torch::kLong)); }, "labels has 4 entries");
  expect_error([&] { tune::ops::token_logprob(x, torch::tensor({0, 5, 1}, torch::kLong)); },
               "label 5 at row 1 is outside the vocabulary [0, 5)");
  expect_error([&] { tune::ops::token_logprob(x, torch::tensor({0, -1, 1}, torch::kLong)); }, "label -1 at row 1");
  expect_error([&] { tune::ops::token_logprob(torch::randn({2, 3, 5}), torch::zeros({2}, torch::kLong)); },
               "must be 2-D [N, V]");
  expect_error([&] { tune::ops::token_logprob(torch::ones({3, 5}, torch::kLong), torch::zeros({3}, torch::kLong)); },
               "floating-point");
  expect_error([&] { tune::ops::token_logprob(x, torch::zeros({3}, torch::TensorOptions().dtype(torch::kLong).device(torch::kMeta))); },
               "labels are on meta");
  TokenLogprobOptions bad_t;
  bad_t.temperature = 0;
  expect_error([&] { tune::ops::token_logprob(x, torch::zeros({3}, torch::kLong), bad_t); }, "temperature");
  expect_error([&] { tune::ops::token_logprob_from_hidden(torch::randn({3, 4}), torch::randn({5, 6}), torch::zeros({3}, torch::kLong)); },
               "hidden size 4 does not match");
  expect_error([&] {
    tune::ops::token_logprob_from_hidden(torch::randn({3, 4}), torch::randn({5, 4}, torch::kBFloat16), torch::zeros({3}, torch::kLong));
  }, "hidden is Float but lm_head_weight is BFloat16");
}

}  // namespace

// SDPA through build_attention_mask against an explicit matmul-softmax with a mask written out
// element by element from the rules (causal, padding, packing, sliding window).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>

#include "tune/model/attention.h"

using namespace tune::model;

namespace {

struct AttentionCase {
  int64_t B = 2, H = 4, KV = 2, T = 9, hd = 8, past = 0;
  std::vector<std::vector<int>> padding;     // [B][past+T] 1/0, empty = none
  std::vector<std::vector<int>> samples;     // [B][T] sample ids, empty = none
  std::optional<int64_t> window;
};

// allowed[b][i][j] from the definitions, query slot i = past + t.
torch::Tensor explicit_mask(const AttentionCase& c) {
  const int64_t Tk = c.past + c.T;
  auto m = torch::zeros({c.B, 1, c.T, Tk}, torch::kBool);
  auto a = m.accessor<bool, 4>();
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t j = 0; j < Tk; ++j) {
        const int64_t i = c.past + t;
        bool ok = j <= i;
        if (c.window) ok = ok && j > i - *c.window;
        if (!c.padding.empty()) ok = ok && c.padding[b][j] == 1;
        if (!c.samples.empty()) ok = ok && c.samples[b][i] == c.samples[b][j];
        a[b][0][t][j] = ok;
      }
  return m;
}

// softmax(q k^T / sqrt(hd) + mask) v with query head h using kv head h / (H/KV).
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& allowed, int64_t H, int64_t KV) {
  auto kk = k.repeat_interleave(H / KV, 1);
  auto vv = v.repeat_interleave(H / KV, 1);
  auto scores = torch::matmul(q, kk.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(-1)));
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(scores.softmax(-1), vv);
}

torch::Tensor to_tensor(const std::vector<std::vector<int>>& rows) {
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(rows.size()), -1});
}

// Compares the two on rows of real queries; returns the max abs difference.
double check(const AttentionCase& c) {
  torch::manual_seed(7);
  const int64_t Tk = c.past + c.T;
  auto q = torch::randn({c.B, c.H, c.T, c.hd}, torch::kFloat64);
  auto k = torch::randn({c.B, c.KV, Tk, c.hd}, torch::kFloat64);
  auto v = torch::randn({c.B, c.KV, Tk, c.hd}, torch::kFloat64);
  MaskSpec spec;
  spec.batch = c.B;
  spec.query_len = c.T;
  spec.past = c.past;
  spec.window = c.window;
  if (!c.padding.empty()) spec.key_padding = to_tensor(c.padding);
  if (!c.samples.empty()) spec.sample_ids = to_tensor(c.samples);
  auto ours = attention(q, k, v, build_attention_mask(spec));
  EXPECT_FALSE(ours.isnan().any().item<bool>()) << "NaN in output";
  auto allowed = explicit_mask(c);
  // Rows of padding queries are free (never read by a real token); compare the others.
  auto real_query = torch::ones({c.B, 1, c.T, 1}, torch::kBool);
  if (!c.padding.empty()) real_query = to_tensor(c.padding).narrow(1, c.past, c.T).ne(0).view({c.B, 1, c.T, 1});
  auto ref = reference(q, k, v, allowed.logical_or(real_query.logical_not()), c.H, c.KV);
  return ((ours - ref).abs() * real_query).max().item<double>();
}

}  // namespace

TEST(ModelAttention, CausalMatchesExplicit) {
  AttentionCase c;
  EXPECT_FALSE(build_attention_mask({.batch = 2, .query_len = 9}).defined()) << "causal fast path expected";
  EXPECT_LT(check(c), 1e-10);
  c.KV = 4;  // plain multi-head
  EXPECT_LT(check(c), 1e-10);
}

TEST(ModelAttention, LeftAndRightPaddingMatchExplicitWithoutNaN) {
  AttentionCase c;
  c.T = 6;
  c.padding = {{0, 0, 0, 1, 1, 1}, {1, 1, 1, 1, 0, 0}};
  EXPECT_LT(check(c), 1e-10);
}

TEST(ModelAttention, PackedMatchesExplicit) {
  AttentionCase c;
  c.T = 8;
  c.samples = {{0, 0, 0, 1, 1, 2, 2, 2}, {5, 5, 5, 5, 5, 9, 9, 9}};
  EXPECT_LT(check(c), 1e-10);
}

TEST(ModelAttention, SlidingWindowMatchesExplicit) {
  AttentionCase c;
  c.T = 10;
  c.window = 3;
  EXPECT_LT(check(c), 1e-10);
  c.padding = {{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}};
  EXPECT_LT(check(c), 1e-10);
}

TEST(ModelAttention, QueriesOverCacheMatchExplicit) {
  AttentionCase c;
  c.past = 5;
  c.T = 3;
  EXPECT_LT(check(c), 1e-10);
  c.padding = {{0, 0, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1}};
  EXPECT_LT(check(c), 1e-10);
  c.T = 1;
  c.past = 7;
  c.window = 4;
  EXPECT_LT(check(c), 1e-10);
}

TEST(ModelAttention, OneQueryPerHeadOverGroupedCacheMatchesExplicit) {
  // A decoding step: the query heads of a group are folded onto their shared KV head.
  for (auto [H, KV] : {std::pair<int64_t, int64_t>{4, 2}, {6, 2}, {8, 1}, {4, 4}}) {
    AttentionCase c;
    c.H = H;
    c.KV = KV;
    c.T = 1;
    c.past = 6;
    EXPECT_LT(check(c), 1e-10) << H << "/" << KV;
    c.padding = {{0, 0, 0, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1}};
    EXPECT_LT(check(c), 1e-10) << H << "/" << KV << " padded";
  }
}

TEST(ModelAttention, PackedEqualsEachSampleAlone) {
  torch::manual_seed(3);
  const int64_t H = 4, KV = 2, hd = 8;
  const std::vector<int64_t> lengths = {3, 5, 2};
  const int64_t T = 10;
  auto q = torch::randn({1, H, T, hd}, torch::kFloat64);
  auto k = torch::randn({1, KV, T, hd}, torch::kFloat64);
  auto v = torch::randn({1, KV, T, hd}, torch::kFloat64);
  std::vector<int64_t> ids;
  for (size_t s = 0; s < lengths.size(); ++s) ids.insert(ids.end(), lengths[s], static_cast<int64_t>(s));
  MaskSpec spec;
  spec.batch = 1;
  spec.query_len = T;
  spec.sample_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  auto packed = attention(q, k, v, build_attention_mask(spec));
  int64_t start = 0;
  for (int64_t n : lengths) {
    auto alone = attention(q.narrow(2, start, n), k.narrow(2, start, n), v.narrow(2, start, n), torch::Tensor());
    EXPECT_LT((packed.narrow(2, start, n) - alone).abs().max().item<double>(), 1e-12);
    start += n;
  }
}

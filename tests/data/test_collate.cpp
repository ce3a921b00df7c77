// Collation and packing, checked against hand-worked tensors.
#include <gtest/gtest.h>

#include "tune/core/error.h"
#include "tune/data/collate.h"

namespace tune::data {
namespace {

using text::TokenizedPair;
using text::TokenizedSample;

std::vector<int64_t> row(const torch::Tensor& t, int64_t b) {
  torch::Tensor r = t[b].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}
using V = std::vector<int64_t>;

TEST(Collate, RightPaddingMasksAndPositions) {
  TokenizedSample a{{11, 12, 13}, {-100, 12, 13}};
  TokenizedSample b{{21, 22}, {21, 22}};
  Batch batch = collate({&a, &b}, {.pad_id = 0});
  ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(batch.input_ids.dtype(), torch::kInt64);
  EXPECT_EQ(row(batch.input_ids, 1), (V{21, 22, 0}));
  // The first token of each sample is never a target.
  EXPECT_EQ(row(batch.labels, 0), (V{-100, 12, 13}));
  EXPECT_EQ(row(batch.labels, 1), (V{-100, 22, -100}));
  EXPECT_EQ(row(batch.attention_mask, 1), (V{1, 1, 0}));
  EXPECT_EQ(row(batch.position_ids, 0), (V{0, 1, 2}));
  EXPECT_EQ(row(batch.position_ids, 1), (V{0, 1, 0}));
  EXPECT_EQ(row(batch.sample_ids, 1), (V{1, 1, 0}));
  EXPECT_EQ(batch.num_label_tokens, 3);
  EXPECT_EQ(batch.num_samples, 2);
  EXPECT_FALSE(batch.packed);
  // pad_to_multiple rounds T up.
  Batch eight = collate({&a, &b}, {.pad_id = 7, .pad_to_multiple = 8});
  EXPECT_EQ(eight.input_ids.size(1), 8);
  EXPECT_EQ(row(eight.input_ids, 0), (V{11, 12, 13, 7, 7, 7, 7, 7}));
}

TEST(Collate, PackedRowsRestartPositionsAndNeverCrossSamples) {
  TokenizedSample a{{11, 12, 13}, {11, 12, 13}};
  TokenizedSample b{{21, 22}, {21, 22}};
  TokenizedSample c{{31, 32, 33, 34}, {-100, -100, 33, 34}};
  Batch batch = collate_rows({{&a, &b}, {&c}}, {.pad_id = 0});
  ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(row(batch.input_ids, 0), (V{11, 12, 13, 21, 22}));
  EXPECT_EQ(row(batch.labels, 0), (V{-100, 12, 13, -100, 22}));  // 21 would be predicted from 13: masked
  EXPECT_EQ(row(batch.position_ids, 0), (V{0, 1, 2, 0, 1}));
  EXPECT_EQ(row(batch.sample_ids, 0), (V{1, 1, 1, 2, 2}));
  EXPECT_EQ(row(batch.sample_ids, 1), (V{1, 1, 1, 1, 0}));
  EXPECT_EQ(row(batch.labels, 1), (V{-100, -100, 33, 34, -100}));
  EXPECT_EQ(batch.num_label_tokens, 5);
  EXPECT_EQ(batch.num_samples, 3);
  EXPECT_TRUE(batch.packed);
  // For every label, the shifted target stays inside its sample: sample_ids[t-1] == sample_ids[t].
  auto sid = batch.sample_ids, lab = batch.labels;
  for (int64_t bi = 0; bi < 2; ++bi) {
    for (int64_t t = 1; t < sid.size(1); ++t) {
      if (lab[bi][t].item<int64_t>() != -100) {
        EXPECT_EQ(sid[bi][t - 1].item<int64_t>(), sid[bi][t].item<int64_t>());
      }
    }
  }
}

TEST(Collate, PreferencePairsAreConcatenatedChosenThenRejected) {
  TokenizedPair p1{{{1, 2, 3}, {-100, -100, 3}}, {{1, 2, 4, 5}, {-100, -100, 4, 5}}, 0.5, true, 2};
  TokenizedPair p2{{{6, 7}, {-100, 7}}, {{6, 8}, {-100, 8}}, 0.0, false, 1};
  PreferenceBatch pb = collate_pairs({&p1, &p2}, {.pad_id = 0});
  EXPECT_EQ(pb.num_pairs, 2);
  ASSERT_EQ(pb.batch.input_ids.sizes(), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(row(pb.batch.input_ids, 0), (V{1, 2, 3, 0}));  // chosen 1
  EXPECT_EQ(row(pb.batch.input_ids, 1), (V{6, 7, 0, 0}));  // chosen 2
  EXPECT_EQ(row(pb.batch.input_ids, 2), (V{1, 2, 4, 5}));  // rejected 1
  EXPECT_EQ(row(pb.batch.labels, 3), (V{-100, 8, -100, -100}));
  EXPECT_FLOAT_EQ(pb.margin[0].item<float>(), 0.5f);
  EXPECT_TRUE(pb.has_margin[0].item<bool>());
  EXPECT_FALSE(pb.has_margin[1].item<bool>());
}

TEST(Collate, FirstFitPacking) {
  // capacity 10: 6 -> r0; 5 -> r1; 4 -> r0 (6+4); 3 -> r1 (5+3); 2 -> r1 (8+2); 7 -> r2; 1 -> r2.
  auto rows = pack_first_fit({6, 5, 4, 3, 2, 7, 1}, 10);
  EXPECT_EQ(rows, (std::vector<std::vector<size_t>>{{0, 2}, {1, 3, 4}, {5, 6}}));
  EXPECT_EQ(pack_first_fit({}, 4).size(), 0u);
  EXPECT_THROW(pack_first_fit({3, 11}, 10), Error);
  // Many items: every row within capacity, every item placed once, and first-fit never leaves an
  // item in a later row when an earlier one had room at the time.
  std::vector<int64_t> lens;
  for (int i = 0; i < 500; ++i) lens.push_back(1 + (i * 37) % 64);
  auto many = pack_first_fit(lens, 64);
  std::vector<int> placed(lens.size(), 0);
  for (auto& r : many) {
    int64_t used = 0;
    for (size_t i : r) used += lens[i], placed[i]++;
    EXPECT_LE(used, 64);
  }
  for (int p : placed) EXPECT_EQ(p, 1);
}

}  // namespace
}  // namespace tune::data

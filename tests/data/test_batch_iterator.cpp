// Epoch iteration: seeded order, coverage, curriculum order, packing, and exact resume.
#include <gtest/gtest.h>

#include <set>

#include "tune/core/error.h"
#include "tune/data/batch_iterator.h"

// Options are written as designated initialisers that name only what a test changes; the rest keep
// their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tune::data {
namespace {

// Sample i: i+1 tokens, all equal to 100 + i, so a batch tells which samples it holds.
text::TokenizedDataset dataset(int n) {
  text::TokenizedDataset d;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> ids(static_cast<size_t>(i % 7 + 1), 100 + i);
    d.samples.push_back({ids, ids});
  }
  return d;
}

std::vector<int64_t> sample_order(const Batch& b) {
  std::vector<int64_t> out;
  auto ids = b.input_ids, sid = b.sample_ids;
  for (int64_t r = 0; r < ids.size(0); ++r) {
    int64_t last = 0;
    for (int64_t t = 0; t < ids.size(1); ++t) {
      int64_t s = sid[r][t].item<int64_t>();
      if (s != 0 && s != last) out.push_back(ids[r][t].item<int64_t>() - 100);
      last = s;
    }
  }
  return out;
}

std::vector<int64_t> epoch_order(BatchIterator& it) {
  std::vector<int64_t> all;
  while (auto b = it.next()) {
    auto o = sample_order(*b);
    all.insert(all.end(), o.begin(), o.end());
  }
  return all;
}

TEST(BatchIterator, EachEpochCoversEverySampleOnceInASeededOrder) {
  auto d = dataset(10);
  BatchIterator it(d, {.batch_size = 3, .seed = 5});
  EXPECT_EQ(it.batches_per_epoch(), 4);
  auto e0 = epoch_order(it);
  EXPECT_EQ(it.state().epoch, 1);
  auto e1 = epoch_order(it);
  EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()).size(), 10u);
  EXPECT_EQ(e0.size(), 10u);
  EXPECT_NE(e0, e1);  // reshuffled
  BatchIterator same(d, {.batch_size = 3, .seed = 5});
  EXPECT_EQ(epoch_order(same), e0);
  BatchIterator other(d, {.batch_size = 3, .seed = 6});
  EXPECT_NE(epoch_order(other), e0);
}

TEST(BatchIterator, CurriculumOrderAndNoShuffleKeepTheGivenOrder) {
  auto d = dataset(5);
  d.fixed_order = true;
  BatchIterator it(d, {.batch_size = 2, .shuffle = true, .seed = 5});
  EXPECT_EQ(epoch_order(it), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  auto d2 = dataset(5);
  BatchIterator plain(d2, {.batch_size = 2, .shuffle = false});
  EXPECT_EQ(epoch_order(plain), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(BatchIterator, DropLast) {
  auto d = dataset(10);
  BatchIterator it(d, {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(it.batches_per_epoch(), 2);
  int n = 0;
  while (auto b = it.next()) {
    EXPECT_EQ(b->input_ids.size(0), 4);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(BatchIterator, PackingFillsRowsUpToMaxSeqLen) {
  auto d = dataset(20);
  BatchIterator it(d, {.batch_size = 2, .packing = true, .max_seq_len = 8, .seed = 1});
  std::vector<int64_t> seen;
  while (auto b = it.next()) {
    EXPECT_LE(b->input_ids.size(1), 8);
    EXPECT_TRUE(b->num_samples >= b->input_ids.size(0));
    auto o = sample_order(*b);
    seen.insert(seen.end(), o.begin(), o.end());
  }
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(20);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all);
}

TEST(BatchIterator, ResumeFromStateReproducesTheRemainingBatches) {
  auto d = dataset(23);
  IteratorOptions o{.batch_size = 4, .packing = true, .max_seq_len = 10, .seed = 9};
  BatchIterator full(d, o);
  std::vector<std::vector<int64_t>> reference;
  for (int i = 0; i < 14; ++i) {
    auto b = full.next();
    reference.push_back(b ? sample_order(*b) : std::vector<int64_t>{-1});
  }
  BatchIterator first(d, o);
  for (int i = 0; i < 5; ++i) first.next();
  Json saved = first.state_json();
  BatchIterator resumed(d, o);
  resumed.restore(Json::parse(saved.dump()));
  for (int i = 5; i < 14; ++i) {
    auto b = resumed.next();
    EXPECT_EQ(b ? sample_order(*b) : std::vector<int64_t>{-1}, reference[static_cast<size_t>(i)]) << i;
  }
  EXPECT_THROW(resumed.restore(Json{{"epoch", 0}, {"index", 999}}), Error);
  EXPECT_THROW(resumed.restore(Json{{"epoch", "x"}}), Error);
}

// DistributedSampler's semantics: the ranks' batches of a step are the one-process batch of
// batch_size x world_size split by rank stride; the padded epoch repeats its first samples.
TEST(BatchIterator, RanksSplitTheGlobalBatchByStride) {
  auto d = dataset(11);
  BatchIterator one(d, {.batch_size = 6, .seed = 3});
  std::vector<std::vector<int64_t>> global;
  while (auto b = one.next()) global.push_back(sample_order(*b));
  ASSERT_EQ(global.size(), 2u);  // 6 + 5 samples

  for (int world : {2, 3}) {
    std::vector<BatchIterator> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(d, IteratorOptions{.batch_size = 6 / world, .seed = 3, .rank = r, .world_size = world});
    EXPECT_EQ(ranks[0].batches_per_epoch(), 2) << world;
    // Step 0: rank r holds global[0][r], global[0][r + W], ...
    for (int r = 0; r < world; ++r) {
      auto b = ranks[static_cast<size_t>(r)].next();
      ASSERT_TRUE(b);
      std::vector<int64_t> expected;
      for (size_t i = static_cast<size_t>(r); i < 6; i += static_cast<size_t>(world)) expected.push_back(global[0][i]);
      EXPECT_EQ(sample_order(*b), expected) << "world " << world << " rank " << r;
    }
    // Step 1: the last 5 samples, padded to 6 with the epoch's first: every rank gets a batch.
    std::multiset<int64_t> seen;
    for (auto& it : ranks) {
      auto b = it.next();
      ASSERT_TRUE(b) << world;
      for (int64_t s : sample_order(*b)) seen.insert(s);
      EXPECT_FALSE(it.next()) << "end of epoch";
      EXPECT_EQ(it.state().epoch, 1);
    }
    std::multiset<int64_t> expected(global[1].begin(), global[1].end());
    expected.insert(global[0][0]);
    EXPECT_EQ(seen, expected) << world;
  }
}

TEST(BatchIterator, ACheckpointRecordsItsWorldSizeAndResumesAtTheGlobalPosition) {
  auto d = dataset(16);
  BatchIterator two(d, {.batch_size = 2, .seed = 4, .rank = 1, .world_size = 2});
  two.next();
  Json saved = two.state_json();
  EXPECT_EQ(saved["world_size"], 2);
  EXPECT_EQ(saved["index"], 4);  // global samples consumed
  BatchIterator reference(d, {.batch_size = 4, .seed = 4});
  reference.next();
  BatchIterator one(d, {.batch_size = 4, .seed = 4});
  one.restore(saved);  // a different world size: warns, continues at the same global sample
  EXPECT_EQ(sample_order(*one.next()), sample_order(*reference.next()));
  EXPECT_THROW(BatchIterator(d, {.rank = 2, .world_size = 2}), Error);
}

TEST(BatchIterator, PreferencePairs) {
  text::TokenizedDataset d;
  for (int i = 0; i < 5; ++i)
    d.pairs.push_back({{{1, 2 + i}, {-100, 2 + i}}, {{1, 50 + i}, {-100, 50 + i}}, 0.0, false, 1});
  PreferenceBatchIterator it(d, {.batch_size = 2, .seed = 3});
  std::set<int64_t> chosen;
  int batches = 0;
  while (auto b = it.next()) {
    ++batches;
    int64_t B = b->num_pairs;
    for (int64_t r = 0; r < B; ++r) {
      int64_t c = b->batch.input_ids[r][1].item<int64_t>(), rj = b->batch.input_ids[B + r][1].item<int64_t>();
      EXPECT_EQ(rj - 50, c - 2);  // row r and row B + r are the same pair
      chosen.insert(c);
    }
  }
  EXPECT_EQ(batches, 3);
  EXPECT_EQ(chosen.size(), 5u);
  EXPECT_THROW(PreferenceBatchIterator(d, {.packing = true}), Error);
}

}  // namespace
}  // namespace tune::data

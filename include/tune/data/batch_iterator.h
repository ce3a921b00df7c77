#pragma once
// Batches over epochs with a seeded order and a resumable position.
//
// Each epoch: the sample order is a seeded permutation (seed, epoch) unless the dataset has a
// curriculum order (fixed_order) or shuffle is off; with packing, the ordered samples are packed
// first-fit into rows of max_seq_len tokens, and batches take batch_size rows. next() returns
// nullopt once at the end of an epoch and then continues with the next epoch.
// state() = {"epoch": e, "index": i} (i = rows / samples / pairs already returned in epoch e) is
// all a checkpoint needs: restore() rebuilds the same epoch plan and continues at i.
//
// Data parallelism (world_size > 1), with PyTorch DistributedSampler's semantics: every rank plans
// the same epoch; a step's global batch is the next batch_size x world_size units, and rank r takes
// units r, r + W, r + 2W, ... of it. Without drop_last the epoch is padded to a multiple of W by
// repeating its first units, so every rank gets at least one unit per batch. The index counts global
// units, so a checkpoint resumes at the same global sample position on any world size.
#include <cstdint>
#include <optional>
#include <vector>

#include "tune/core/json.h"
#include "tune/data/collate.h"
#include "tune/text/dataset.h"

namespace tune::data {

struct IteratorOptions {
  int64_t batch_size = 8;       // rows per batch (packed rows when packing)
  bool packing = false;
  int64_t max_seq_len = 2048;   // packed row capacity
  bool shuffle = true;
  uint64_t seed = 42;
  bool drop_last = false;       // skip a final batch smaller than batch_size (x world_size)
  int rank = 0;                 // this process's rank and the number of data-parallel ranks
  int world_size = 1;
  CollateOptions collate;
};

// Position in the data stream; the checkpointed part of an iterator.
struct IteratorState {
  int64_t epoch = 0;
  int64_t index = 0;
  int world_size = 1;  // of the run that saved it (informational: the index is global)
  Json to_json() const { return {{"epoch", epoch}, {"index", index}, {"world_size", world_size}}; }
  static IteratorState from_json(const Json& j);
};

// `state` stamped with the world size of `options` (what a checkpoint records).
inline IteratorState with_world(IteratorState state, const IteratorOptions& options) {
  state.world_size = options.world_size;
  return state;
}

class EpochPlan {
 public:
  // `count` items; `lengths` (for packing) per item.
  EpochPlan(size_t count, const IteratorOptions& options, bool fixed_order);
  // Units (each a list of item indices: one item, or a packed row) of `epoch`.
  std::vector<std::vector<size_t>> units(int64_t epoch, const std::vector<int64_t>& lengths) const;
 private:
  size_t count_;
  IteratorOptions options_;
  bool fixed_order_;
};

// SFT / text batches over TokenizedDataset::samples.
class BatchIterator {
 public:
  // `data` must outlive the iterator.
  BatchIterator(const text::TokenizedDataset& data, IteratorOptions options);
  std::optional<Batch> next();
  int64_t batches_per_epoch() const;
  IteratorState state() const { return state_; }
  Json state_json() const { return with_world(state_, options_).to_json(); }
  void restore(const IteratorState& state);
  void restore(const Json& state) { restore(IteratorState::from_json(state)); }
 private:
  void plan_epoch();
  const text::TokenizedDataset& data_;
  IteratorOptions options_;
  EpochPlan plan_;
  std::vector<int64_t> lengths_;
  std::vector<std::vector<size_t>> units_;
  IteratorState state_;
};

// Preference batches over TokenizedDataset::pairs (never packed).
class PreferenceBatchIterator {
 public:
  PreferenceBatchIterator(const text::TokenizedDataset& data, IteratorOptions options);
  std::optional<PreferenceBatch> next();
  int64_t batches_per_epoch() const;
  IteratorState state() const { return state_; }
  Json state_json() const { return with_world(state_, options_).to_json(); }
  void restore(const IteratorState& state);
  void restore(const Json& state) { restore(IteratorState::from_json(state)); }
 private:
  void plan_epoch();
  const text::TokenizedDataset& data_;
  IteratorOptions options_;
  EpochPlan plan_;
  std::vector<std::vector<size_t>> units_;
  IteratorState state_;
};

}  // namespace tune::data

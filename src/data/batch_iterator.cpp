#include "tune/data/batch_iterator.h"

#include <numeric>

#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::data {

IteratorState IteratorState::from_json(const Json& j) {
  TUNE_CHECK(j.is_object() && j.contains("epoch") && j.contains("index") && j["epoch"].is_number_integer() &&
                 j["index"].is_number_integer(),
             "data iterator state must be {\"epoch\": int, \"index\": int}, got ", j.dump());
  IteratorState s{j["epoch"].get<int64_t>(), j["index"].get<int64_t>()};
  if (j.contains("world_size") && j["world_size"].is_number_integer()) s.world_size = j["world_size"].get<int>();
  TUNE_CHECK(s.epoch >= 0 && s.index >= 0, "data iterator state must not be negative: ", j.dump());
  return s;
}

EpochPlan::EpochPlan(size_t count, const IteratorOptions& options, bool fixed_order)
    : count_(count), options_(options), fixed_order_(fixed_order) {
  TUNE_CHECK(options.batch_size > 0, "data: batch_size must be > 0");
  TUNE_CHECK(options.world_size >= 1 && options.rank >= 0 && options.rank < options.world_size, "data: rank ",
             options.rank, " is not in a world of ", options.world_size);
}

// DistributedSampler's padding: the epoch's first units repeated up to a multiple of the world size.
static void pad_to_world(std::vector<std::vector<size_t>>& units, const IteratorOptions& o) {
  if (o.world_size == 1 || o.drop_last || units.empty()) return;
  const size_t w = static_cast<size_t>(o.world_size);
  const size_t real = units.size();
  for (size_t i = 0; units.size() % w != 0; ++i) units.push_back(units[i % real]);
}

std::vector<std::vector<size_t>> EpochPlan::units(int64_t epoch, const std::vector<int64_t>& lengths) const {
  std::vector<size_t> order;
  if (options_.shuffle && !fixed_order_) {
    order = text::seeded_permutation(count_, text::derive_seed(options_.seed, static_cast<uint64_t>(epoch)));
  } else {
    order.resize(count_);
    std::iota(order.begin(), order.end(), size_t{0});
  }
  std::vector<std::vector<size_t>> out;
  if (!options_.packing) {
    out.reserve(order.size());
    for (size_t i : order) out.push_back({i});
    pad_to_world(out, options_);
    return out;
  }
  std::vector<int64_t> ordered_lengths;
  ordered_lengths.reserve(order.size());
  for (size_t i : order) ordered_lengths.push_back(lengths[i]);
  for (auto& row : pack_first_fit(ordered_lengths, options_.max_seq_len)) {
    for (size_t& k : row) k = order[k];
    out.push_back(std::move(row));
  }
  pad_to_world(out, options_);
  return out;
}

namespace {

void warn_if_world_changed(const IteratorState& state, const IteratorOptions& o) {
  if (state.world_size != o.world_size)
    log::warn("resuming on ", o.world_size, " rank(s) from a checkpoint of ", state.world_size,
              ": the data continues at the same global sample position, but batches split differently, so "
              "the run is not bit-exact with an uninterrupted one");
}

// Units of one step over all ranks.
int64_t global_batch(const IteratorOptions& o) { return o.batch_size * o.world_size; }

int64_t batches_of(size_t units, const IteratorOptions& o) {
  auto n = static_cast<int64_t>(units);
  const int64_t b = global_batch(o);
  return o.drop_last ? n / b : (n + b - 1) / b;
}

// The global range of the next batch, or false at the end of the epoch.
bool next_range(size_t units, const IteratorOptions& o, int64_t index, size_t& begin, size_t& end) {
  auto n = static_cast<int64_t>(units);
  int64_t take = std::min(global_batch(o), n - index);
  if (take <= 0 || (o.drop_last && take < global_batch(o))) return false;
  begin = static_cast<size_t>(index);
  end = static_cast<size_t>(index + take);
  return true;
}

// This rank's units of the global range [begin, end).
std::vector<size_t> rank_units(size_t begin, size_t end, const IteratorOptions& o) {
  std::vector<size_t> out;
  for (size_t u = begin + static_cast<size_t>(o.rank); u < end; u += static_cast<size_t>(o.world_size)) out.push_back(u);
  return out;
}

}  // namespace

BatchIterator::BatchIterator(const text::TokenizedDataset& data, IteratorOptions options)
    : data_(data), options_(options), plan_(data.samples.size(), options, data.fixed_order) {
  TUNE_CHECK(!data.samples.empty(), "data: no samples to iterate over");
  for (const auto& s : data.samples) lengths_.push_back(static_cast<int64_t>(s.input_ids.size()));
  plan_epoch();
}

void BatchIterator::plan_epoch() { units_ = plan_.units(state_.epoch, lengths_); }

int64_t BatchIterator::batches_per_epoch() const { return batches_of(units_.size(), options_); }

void BatchIterator::restore(const IteratorState& state) {
  warn_if_world_changed(state, options_);
  state_ = state;
  plan_epoch();
  TUNE_CHECK(state_.index <= static_cast<int64_t>(units_.size()), "data iterator state index ", state_.index,
             " is past the end of epoch ", state_.epoch, " (", units_.size(), " rows): the data changed since the checkpoint");
}

std::optional<Batch> BatchIterator::next() {
  size_t begin, end;
  if (!next_range(units_.size(), options_, state_.index, begin, end)) {
    ++state_.epoch;
    state_.index = 0;
    plan_epoch();
    return std::nullopt;
  }
  std::vector<std::vector<const text::TokenizedSample*>> rows;
  for (size_t u : rank_units(begin, end, options_)) {
    std::vector<const text::TokenizedSample*> row;
    for (size_t i : units_[u]) row.push_back(&data_.samples[i]);
    rows.push_back(std::move(row));
  }
  state_.index = static_cast<int64_t>(end);
  return collate_rows(rows, options_.collate);
}

PreferenceBatchIterator::PreferenceBatchIterator(const text::TokenizedDataset& data, IteratorOptions options)
    : data_(data), options_(options), plan_(data.pairs.size(), [&] {
        IteratorOptions o = options;
        o.packing = false;
        return o;
      }(), data.fixed_order) {
  TUNE_CHECK(!data.pairs.empty(), "data: no preference pairs to iterate over");
  TUNE_CHECK(!options.packing, "data: packing is not supported for preference pairs");
  plan_epoch();
}

void PreferenceBatchIterator::plan_epoch() { units_ = plan_.units(state_.epoch, {}); }

int64_t PreferenceBatchIterator::batches_per_epoch() const { return batches_of(units_.size(), options_); }

void PreferenceBatchIterator::restore(const IteratorState& state) {
  warn_if_world_changed(state, options_);
  state_ = state;
  plan_epoch();
  TUNE_CHECK(state_.index <= static_cast<int64_t>(units_.size()), "data iterator state index ", state_.index,
             " is past the end of epoch ", state_.epoch, ": the data changed since the checkpoint");
}

std::optional<PreferenceBatch> PreferenceBatchIterator::next() {
  size_t begin, end;
  if (!next_range(units_.size(), options_, state_.index, begin, end)) {
    ++state_.epoch;
    state_.index = 0;
    plan_epoch();
    return std::nullopt;
  }
  std::vector<const text::TokenizedPair*> pairs;
  for (size_t u : rank_units(begin, end, options_)) pairs.push_back(&data_.pairs[units_[u][0]]);
  state_.index = static_cast<int64_t>(end);
  return collate_pairs(pairs, options_.collate);
}

}  // namespace tune::data

#include "tune/data/batch_iterator.h"

#include <numeric>

#include "tune/core/error.h"

namespace tune::data {

IteratorState IteratorState::from_json(const Json& j) {
  TUNE_CHECK(j.is_object() && j.contains("epoch") && j.contains("index") && j["epoch"].is_number_integer() &&
                 j["index"].is_number_integer(),
             "data iterator state must be {\"epoch\": int, \"index\": int}, got ", j.dump());
  IteratorState s{j["epoch"].get<int64_t>(), j["index"].get<int64_t>()};
  TUNE_CHECK(s.epoch >= 0 && s.index >= 0, "data iterator state must not be negative: ", j.dump());
  return s;
}

EpochPlan::EpochPlan(size_t count, const IteratorOptions& options, bool fixed_order)
    : count_(count), options_(options), fixed_order_(fixed_order) {
  TUNE_CHECK(options.batch_size > 0, "data: batch_size must be > 0");
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
    return out;
  }
  std::vector<int64_t> ordered_lengths;
  ordered_lengths.reserve(order.size());
  for (size_t i : order) ordered_lengths.push_back(lengths[i]);
  for (auto& row : pack_first_fit(ordered_lengths, options_.max_seq_len)) {
    for (size_t& k : row) k = order[k];
    out.push_back(std::move(row));
  }
  return out;
}

namespace {

int64_t batches_of(size_t units, const IteratorOptions& o) {
  auto n = static_cast<int64_t>(units);
  return o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
}

// The range of the next batch, or false at the end of the epoch.
bool next_range(size_t units, const IteratorOptions& o, int64_t index, size_t& begin, size_t& end) {
  auto n = static_cast<int64_t>(units);
  int64_t take = std::min(o.batch_size, n - index);
  if (take <= 0 || (o.drop_last && take < o.batch_size)) return false;
  begin = static_cast<size_t>(index);
  end = static_cast<size_t>(index + take);
  return true;
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
  for (size_t u = begin; u < end; ++u) {
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
  for (size_t u = begin; u < end; ++u) pairs.push_back(&data_.pairs[units_[u][0]]);
  state_.index = static_cast<int64_t>(end);
  return collate_pairs(pairs, options_.collate);
}

}  // namespace tune::data

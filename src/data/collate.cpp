#include "tune/data/collate.h"

#include <algorithm>

#include "tune/core/error.h"

namespace tune::data {

Batch collate_rows(const std::vector<std::vector<const text::TokenizedSample*>>& rows, const CollateOptions& options) {
  TUNE_CHECK(!rows.empty(), "collate: empty batch");
  TUNE_CHECK(options.pad_to_multiple >= 1, "collate: pad_to_multiple must be >= 1");
  int64_t longest = 0, samples = 0;
  for (const auto& row : rows) {
    int64_t len = 0;
    for (const auto* s : row) {
      TUNE_CHECK(s->input_ids.size() == s->labels.size(), "collate: input_ids and labels differ in length");
      len += static_cast<int64_t>(s->input_ids.size());
    }
    longest = std::max(longest, len);
    samples += static_cast<int64_t>(row.size());
  }
  const int64_t B = static_cast<int64_t>(rows.size());
  const int64_t T = std::max<int64_t>(1, (longest + options.pad_to_multiple - 1) / options.pad_to_multiple * options.pad_to_multiple);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  Batch out;
  out.input_ids = torch::full({B, T}, static_cast<int64_t>(options.pad_id), i64);  // [B, T]
  out.labels = torch::full({B, T}, static_cast<int64_t>(text::kIgnoreIndex), i64);
  out.attention_mask = torch::zeros({B, T}, i64);
  out.position_ids = torch::zeros({B, T}, i64);
  out.sample_ids = torch::zeros({B, T}, i64);
  auto ids = out.input_ids.accessor<int64_t, 2>();
  auto labels = out.labels.accessor<int64_t, 2>();
  auto mask = out.attention_mask.accessor<int64_t, 2>();
  auto pos = out.position_ids.accessor<int64_t, 2>();
  auto sid = out.sample_ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t t = 0, k = 0;
    for (const auto* s : rows[static_cast<size_t>(b)]) {
      ++k;
      for (size_t i = 0; i < s->input_ids.size(); ++i, ++t) {
        ids[b][t] = s->input_ids[i];
        int32_t label = i == 0 ? text::kIgnoreIndex : s->labels[i];
        labels[b][t] = label;
        out.num_label_tokens += label != text::kIgnoreIndex;
        mask[b][t] = 1;
        pos[b][t] = static_cast<int64_t>(i);
        sid[b][t] = k;
      }
    }
  }
  out.num_samples = samples;
  out.packed = samples > B;
  return out;
}

Batch collate(const std::vector<const text::TokenizedSample*>& samples, const CollateOptions& options) {
  std::vector<std::vector<const text::TokenizedSample*>> rows;
  rows.reserve(samples.size());
  for (const auto* s : samples) rows.push_back({s});
  return collate_rows(rows, options);
}

PreferenceBatch collate_pairs(const std::vector<const text::TokenizedPair*>& pairs, const CollateOptions& options) {
  TUNE_CHECK(!pairs.empty(), "collate: empty preference batch");
  std::vector<const text::TokenizedSample*> seqs;
  for (const auto* p : pairs) seqs.push_back(&p->chosen);
  for (const auto* p : pairs) seqs.push_back(&p->rejected);
  PreferenceBatch out;
  out.batch = collate(seqs, options);  // [2B, T]
  out.num_pairs = static_cast<int64_t>(pairs.size());
  out.margin = torch::zeros({out.num_pairs}, torch::kFloat32);
  out.has_margin = torch::zeros({out.num_pairs}, torch::kBool);
  for (int64_t i = 0; i < out.num_pairs; ++i) {
    out.margin[i] = static_cast<float>(pairs[static_cast<size_t>(i)]->margin);
    out.has_margin[i] = pairs[static_cast<size_t>(i)]->has_margin;
  }
  return out;
}

std::vector<std::vector<size_t>> pack_first_fit(const std::vector<int64_t>& lengths, int64_t capacity) {
  TUNE_CHECK(capacity > 0, "packing: capacity must be > 0");
  // A max segment tree over the rows' free space finds the first row with room in O(log rows).
  size_t size = 1;
  while (size < std::max<size_t>(lengths.size(), 1)) size <<= 1;
  std::vector<int64_t> tree(2 * size, 0);
  std::vector<std::vector<size_t>> rows;
  auto update = [&](size_t row, int64_t free) {
    size_t node = row + size;
    tree[node] = free;
    for (node /= 2; node >= 1; node /= 2) tree[node] = std::max(tree[2 * node], tree[2 * node + 1]);
  };
  for (size_t i = 0; i < lengths.size(); ++i) {
    int64_t len = lengths[i];
    TUNE_CHECK(len <= capacity, "packing: sample ", i, " has ", len, " tokens, more than max_seq_len=", capacity);
    size_t row;
    if (!rows.empty() && tree[1] >= len) {
      size_t node = 1;
      while (node < size) node = tree[2 * node] >= len ? 2 * node : 2 * node + 1;
      row = node - size;
    } else {
      row = rows.size();
      rows.emplace_back();
      tree[row + size] = capacity;
    }
    rows[row].push_back(i);
    update(row, tree[row + size] - len);
  }
  return rows;
}

Batch to_device(const Batch& batch, const torch::Device& device) {
  Batch out = batch;
  for (torch::Tensor* t : {&out.input_ids, &out.labels, &out.attention_mask, &out.position_ids, &out.sample_ids})
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  return out;
}

PreferenceBatch to_device(const PreferenceBatch& batch, const torch::Device& device) {
  PreferenceBatch out = batch;
  out.batch = to_device(batch.batch, device);
  out.margin = batch.margin.to(device);
  out.has_margin = batch.has_margin.to(device);
  return out;
}

}  // namespace tune::data

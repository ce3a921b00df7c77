#pragma once
// Collation of tokenized samples into LibTorch tensors, with or without packing.
//
// Labels are aligned with input_ids (labels[t] is token t itself; the loss shifts by one, as in
// HF). The first token of every sample gets label -100: nothing predicts it, and in a packed row
// this is what keeps the last token of one sample from being trained to predict the next
// sample's first token. So num_label_tokens counts exactly the targets the shifted loss uses.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "tune/text/chat_mask.h"

namespace tune::data {

struct Batch {
  torch::Tensor input_ids;       // [B, T] int64, pad_id after the real tokens (right padding)
  torch::Tensor labels;          // [B, T] int64, -100 = not trained (padding, prompt, first token of a sample)
  torch::Tensor attention_mask;  // [B, T] int64, 1 = real token, 0 = padding
  torch::Tensor position_ids;    // [B, T] int64, 0.. per sample (restarting inside packed rows), 0 on padding
  torch::Tensor sample_ids;      // [B, T] int64, 1..k for the k samples of a row, 0 on padding
  int64_t num_label_tokens = 0;  // labels != -100
  int64_t num_samples = 0;       // samples in the batch (more than B when packed)
  bool packed = false;           // rows may hold several samples: attention must not cross sample_ids
};

// Chosen and rejected sequences CONCATENATED along the batch: rows [0, B) are chosen, rows
// [B, 2B) the rejected of the same pairs in the same order, all padded to one T (one forward pass).
struct PreferenceBatch {
  Batch batch;              // [2B, T]
  torch::Tensor margin;     // [B] float32 (0 where a pair has none)
  torch::Tensor has_margin; // [B] bool
  int64_t num_pairs = 0;    // B
};

struct CollateOptions {
  int32_t pad_id = 0;
  int64_t pad_to_multiple = 1;  // round T up (e.g. 8 for tensor cores)
};

// One row per entry of `rows`, each holding its samples one after another.
Batch collate_rows(const std::vector<std::vector<const text::TokenizedSample*>>& rows, const CollateOptions& options);
// One sample per row.
Batch collate(const std::vector<const text::TokenizedSample*>& samples, const CollateOptions& options);
PreferenceBatch collate_pairs(const std::vector<const text::TokenizedPair*>& pairs, const CollateOptions& options);

// The batch's tensors on `device` (non-blocking copies from pinned memory where possible).
Batch to_device(const Batch& batch, const torch::Device& device);
PreferenceBatch to_device(const PreferenceBatch& batch, const torch::Device& device);

// Greedy first-fit packing: items taken in the given order, each put in the first row with room
// (rows hold at most `capacity` tokens). Returns the item indices of each row, rows in order of
// opening. An item longer than capacity is an error (truncate first).
std::vector<std::vector<size_t>> pack_first_fit(const std::vector<int64_t>& lengths, int64_t capacity);

}  // namespace tune::data

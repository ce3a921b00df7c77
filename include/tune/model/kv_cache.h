#pragma once
// Preallocated key/value cache for incremental decoding: one [B, KV, Tmax, hd] pair per layer.
// All rows share one fill length (prompts are left-padded), so a step writes one slot column.
#include <torch/torch.h>

#include <vector>

#include "tune/model/config.h"

namespace tune::model {

class KVCache {
 public:
  KVCache() = default;
  // Zeroed buffers of `capacity` slots in `options` (dtype/device of the model's activations).
  KVCache(const ModelConfig& config, int64_t batch, int64_t capacity, torch::TensorOptions options);

  int64_t length() const { return length_; }  // slots filled so far
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return keys_.empty() ? 0 : keys_[0].size(0); }
  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }

  // Writes k/v [B, KV, T, hd] of `layer` at slots [length, length+T) and returns the filled views
  // [B, KV, length+T, hd]. The length itself moves only in advance(), once every layer is done.
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);
  void advance(int64_t steps);
  // Keeps only the batch rows `rows` (int64 [B'] on any device): finished sequences leave the batch.
  void keep_rows(const torch::Tensor& rows);
  // A new cache of `capacity` slots whose row i holds this cache's row rows[i] (int64 [B'], rows
  // may repeat): a prompt prefilled once, then shared by the G samples drawn from it. Only the
  // filled slots are copied; the length carries over.
  KVCache gather_rows(const torch::Tensor& rows, int64_t capacity) const;

 private:
  std::vector<torch::Tensor> keys_;    // per layer [B, KV, Tmax, hd]
  std::vector<torch::Tensor> values_;  // per layer [B, KV, Tmax, hd]
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace tune::model

#include "tune/model/kv_cache.h"

#include "tune/core/error.h"

namespace tune::model {

KVCache::KVCache(const ModelConfig& config, int64_t batch, int64_t capacity, torch::TensorOptions options)
    : capacity_(capacity) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    keys_.push_back(torch::zeros({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
    values_.push_back(torch::zeros({batch, config.num_key_value_heads, capacity, config.head_dim}, options));
  }
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t T = k.size(2);
  TUNE_CHECK(length_ + T <= capacity_, "KV cache full: ", length_, " + ", T, " slots > capacity ", capacity_);
  auto& K = keys_.at(static_cast<size_t>(layer));
  auto& V = values_.at(static_cast<size_t>(layer));
  TUNE_CHECK(k.size(0) == K.size(0), "KV cache holds ", K.size(0), " rows, got a batch of ", k.size(0));
  K.narrow(2, length_, T).copy_(k);
  V.narrow(2, length_, T).copy_(v);
  return {K.narrow(2, 0, length_ + T), V.narrow(2, 0, length_ + T)};
}

void KVCache::advance(int64_t steps) {
  TUNE_CHECK(length_ + steps <= capacity_, "KV cache overrun");
  length_ += steps;
}

void KVCache::keep_rows(const torch::Tensor& rows) {
  for (auto& t : keys_) t = t.index_select(0, rows.to(t.device()));
  for (auto& t : values_) t = t.index_select(0, rows.to(t.device()));
}

KVCache KVCache::gather_rows(const torch::Tensor& rows, int64_t capacity) const {
  TUNE_CHECK(capacity >= length_, "KV cache: a copy of ", capacity, " slots cannot hold the ", length_, " filled ones");
  KVCache out;
  out.capacity_ = capacity;
  out.length_ = length_;
  auto copy = [&](const torch::Tensor& t) {
    auto index = rows.to(t.device());
    auto dst = torch::empty({index.size(0), t.size(1), capacity, t.size(3)}, t.options());
    // Slots past the length are written before they are read (append), so they stay uninitialised.
    dst.narrow(2, 0, length_).copy_(t.narrow(2, 0, length_).index_select(0, index));
    return dst;
  };
  for (const auto& t : keys_) out.keys_.push_back(copy(t));
  for (const auto& t : values_) out.values_.push_back(copy(t));
  return out;
}

}  // namespace tune::model

#pragma once
// Attention masks and the scaled-dot-product attention call shared by every layer.
#include <torch/torch.h>

#include <optional>

namespace tune::model {

// Which keys each query may see. Queries are the cache slots [past, past+Tq), keys [0, Tk) with
// Tk = past + Tq; "index" below means that slot, not the RoPE position.
struct MaskSpec {
  int64_t batch = 1;
  int64_t query_len = 0;  // Tq
  int64_t past = 0;       // slots already in the KV cache
  torch::Tensor key_padding;  // optional [B, Tk]: nonzero = real token, 0 = padding
  torch::Tensor sample_ids;   // optional [B, Tk]: a query only sees keys with the same id (packing)
  std::optional<int64_t> window;  // query i sees key j only when i - window < j
  torch::Device device = torch::kCPU;  // where the mask is built
};

// The boolean mask (true = may attend) [B, 1, Tq, Tk] combining causality, padding, packing and the
// sliding window. Every query also sees its own slot, so a row of padding never becomes all-false
// (softmax over nothing would be NaN); those rows' outputs are meaningless and never read by a
// real token. Returns an undefined tensor when plain causal attention is exact (the SDPA
// is_causal fast path, or no mask at all for a single query over a cache): see needs_mask().
torch::Tensor build_attention_mask(const MaskSpec& spec);

// q [B, H, Tq, hd], k/v [B, KV, Tk, hd] with H a multiple of KV (query head h uses KV head
// h / (H/KV)); mask from build_attention_mask (undefined -> causal if Tq == Tk, else unmasked).
// Returns [B, H, Tq, hd]. Scale hd^-0.5. Shared KV heads are never expanded into copies: a single
// query (a decoding step) folds each group of query heads onto its KV head, longer queries use
// SDPA's grouped-query mode.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask);

}  // namespace tune::model

#include "tune/model/attention.h"

#include "tune/core/error.h"

namespace tune::model {

torch::Tensor build_attention_mask(const MaskSpec& spec) {
  const int64_t Tq = spec.query_len;
  const int64_t Tk = spec.past + Tq;
  const bool window_bites = spec.window && *spec.window < Tk;
  const bool plain_causal = !spec.key_padding.defined() && !spec.sample_ids.defined() && !window_bites;
  if (plain_causal && (spec.past == 0 || Tq == 1)) return {};

  auto idx = torch::TensorOptions().dtype(torch::kInt64).device(spec.device);
  auto q = torch::arange(spec.past, Tk, idx).unsqueeze(1);  // [Tq, 1] slot of each query
  auto k = torch::arange(0, Tk, idx).unsqueeze(0);          // [1, Tk]
  auto mask = k.le(q);                                      // [Tq, Tk] causal
  if (spec.window) mask = mask.logical_and(k.gt(q - *spec.window));
  auto full = mask.unsqueeze(0).expand({spec.batch, Tq, Tk});  // [B, Tq, Tk]
  if (spec.key_padding.defined()) {
    TUNE_CHECK(spec.key_padding.dim() == 2 && spec.key_padding.size(1) == Tk, "attention_mask has shape ",
               spec.key_padding.sizes(), ", expected [", spec.batch, ", ", Tk, "]");
    full = full.logical_and(spec.key_padding.to(spec.device).ne(0).unsqueeze(1));
  }
  if (spec.sample_ids.defined()) {
    TUNE_CHECK(spec.sample_ids.dim() == 2 && spec.sample_ids.size(1) == Tk, "sample_ids has shape ",
               spec.sample_ids.sizes(), ", expected [", spec.batch, ", ", Tk, "]");
    auto ids = spec.sample_ids.to(spec.device);
    auto ids_q = ids.narrow(1, spec.past, Tq).unsqueeze(2);  // [B, Tq, 1]
    full = full.logical_and(ids_q.eq(ids.unsqueeze(1)));
  }
  // A query always sees its own slot: rows of padding stay finite.
  full = full.logical_or(k.eq(q).unsqueeze(0));
  return full.unsqueeze(1);  // [B, 1, Tq, Tk]
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), hd = q.size(3), KV = k.size(1);
  TUNE_CHECK(H % KV == 0, "attention: ", H, " query heads are not a multiple of ", KV, " key/value heads");
  std::optional<torch::Tensor> attn_mask;
  if (mask.defined()) attn_mask = mask.device() == q.device() ? mask : mask.to(q.device());
  if (H != KV && Tq == 1) {
    // One query per head (a decoding step): the H/KV query heads that share a KV head become that
    // head's H/KV "query positions", so the cache is read as it is, never copied per head. Query
    // head h = kv * group + g reads KV head kv; the mask [B, 1, 1, Tk] broadcasts over the group.
    const int64_t group = H / KV;
    auto grouped = q.reshape({B, KV, group, hd});  // [B, KV, group, hd]
    auto out = at::scaled_dot_product_attention(grouped, k, v, attn_mask, 0.0, /*is_causal=*/false);
    return out.reshape({B, H, 1, hd});
  }
  // Several queries: SDPA's grouped-query mode (query head h reads KV head h / (H/KV)); its flash
  // kernels read the shared heads in place, its math fallback repeats them itself.
  const bool is_causal = !mask.defined() && Tq == k.size(2) && Tq > 1;
  return at::scaled_dot_product_attention(q, k, v, attn_mask, 0.0, is_causal, std::nullopt, /*enable_gqa=*/H != KV);
}

}  // namespace tune::model

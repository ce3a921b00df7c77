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
  const int64_t H = q.size(1), KV = k.size(1);
  torch::Tensor keys = k, values = v;
  if (H != KV) {
    // Query head h reads KV head h / (H/KV): repeat each KV head H/KV times, adjacent.
    const int64_t group = H / KV;
    auto repeat = [&](const torch::Tensor& t) {
      return t.unsqueeze(2).expand({t.size(0), KV, group, t.size(2), t.size(3)}).reshape({t.size(0), H, t.size(2), t.size(3)});
    };
    keys = repeat(k);
    values = repeat(v);
  }
  const bool is_causal = !mask.defined() && q.size(2) == k.size(2) && q.size(2) > 1;
  std::optional<torch::Tensor> attn_mask;
  if (mask.defined()) attn_mask = mask.device() == q.device() ? mask : mask.to(q.device());
  return at::scaled_dot_product_attention(q, keys, values, attn_mask, 0.0, is_causal);
}

}  // namespace tune::model

#include "tune/ops/token_logprob.h"

#include <algorithm>
#include <cmath>

#include "tune/core/error.h"
#include "tune/ops/dispatch.h"
#ifdef TUNE_WITH_CUDA_KERNELS
#include "ops/cuda_bindings.h"
#endif

namespace tune::ops {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

constexpr int64_t kChunkBytes = int64_t{256} << 20;

struct ChunkSettings {
  double temperature;
  bool entropy;
  int64_t chunk_rows;
  int64_t ignore_index;
};

ChunkSettings settings_from(const TokenLogprobOptions& o, int64_t vocab) {
  TUNE_CHECK(std::isfinite(o.temperature) && o.temperature > 0, "token_logprob: temperature must be a positive number, got ",
             o.temperature);
  TUNE_CHECK(o.chunk_rows >= 0, "token_logprob: chunk_rows must be >= 0 (0 = automatic), got ", o.chunk_rows);
  return {o.temperature, o.compute_entropy, o.chunk_rows > 0 ? o.chunk_rows : default_chunk_rows(vocab), o.ignore_index};
}

void check_labels(const Tensor& labels, int64_t n, int64_t vocab, int64_t ignore_index, const Tensor& like,
                  const char* like_name) {
  TUNE_CHECK(labels.defined() && labels.dim() == 1, "token_logprob: labels must be 1-D [N], got shape ",
             labels.defined() ? labels.sizes() : torch::IntArrayRef{});
  TUNE_CHECK(labels.scalar_type() == torch::kLong, "token_logprob: labels must be int64, got ", labels.scalar_type());
  TUNE_CHECK(labels.size(0) == n, "token_logprob: labels has ", labels.size(0), " entries but ", like_name, " has ", n,
             " rows");
  TUNE_CHECK(labels.device() == like.device(), "token_logprob: labels are on ", labels.device(), " but ", like_name,
             " is on ", like.device());
  if (n == 0) return;
  Tensor bad = (labels != ignore_index) & ((labels < 0) | (labels >= vocab));  // [N]
  if (bad.any().item<bool>()) {
    int64_t row = bad.nonzero().flatten()[0].item<int64_t>();
    fail("token_logprob: label ", labels[row].item<int64_t>(), " at row ", row, " is outside the vocabulary [0, ", vocab,
         ") and is not the ignore index ", ignore_index);
  }
}

void check_float(const Tensor& t, const char* name) {
  TUNE_CHECK(t.is_floating_point(), "token_logprob: ", name, " must be a floating-point tensor, got ", t.scalar_type());
}

// Scaled float32 logits of one chunk and their log-sum-exp.
struct ChunkSoftmax {
  Tensor z;    // [n, V] float32, logits / T
  Tensor lse;  // [n]
};

ChunkSoftmax chunk_softmax(const Tensor& logits_chunk, double temperature) {
  Tensor z = logits_chunk.to(torch::kFloat32);
  if (temperature != 1.0) z = z / temperature;  // a new tensor even for float32 input: never scale the caller's logits
  Tensor lse = torch::logsumexp(z, -1);
  return {z, lse};
}

// p * log p, with 0 where p underflows to 0 (a -inf logit would otherwise give 0 * -inf = nan).
Tensor plogp(const Tensor& p, const Tensor& logp_full) { return torch::where(p > 0, p * logp_full, torch::zeros({}, p.options())); }

// Forward of one chunk into out_lp / out_ent (rows of the [N] outputs).
void chunk_forward(const Tensor& logits_chunk, const Tensor& safe_labels, const Tensor& valid, const ChunkSettings& s,
                   Tensor out_lp, Tensor out_ent) {
  auto [z, lse] = chunk_softmax(logits_chunk, s.temperature);
  Tensor lp = z.gather(1, safe_labels.unsqueeze(1)).squeeze(1) - lse;  // [n]
  Tensor zero = torch::zeros({}, lp.options());
  out_lp.copy_(torch::where(valid, lp, zero));
  if (out_ent.defined()) {
    Tensor logp_full = z - lse.unsqueeze(1);  // [n, V]
    Tensor h = -plogp(logp_full.exp(), logp_full).sum(-1);
    out_ent.copy_(torch::where(valid, h, zero));
  }
}

// d(output)/d(scaled logits) for one chunk, float32 [n, V], already divided by T (i.e. wrt raw logits).
Tensor chunk_grad_logits(const Tensor& logits_chunk, const Tensor& safe_labels, const Tensor& valid,
                         const ChunkSettings& s, const Tensor& g_lp, const Tensor& g_ent) {
  auto [z, lse] = chunk_softmax(logits_chunk, s.temperature);
  Tensor zero = torch::zeros({}, z.options());
  // Reuse z's buffer when it is ours; for float32 input at T = 1 it aliases the saved logits.
  Tensor logp_full = z.is_alias_of(logits_chunk) ? z - lse.unsqueeze(1) : z.sub_(lse.unsqueeze(1));  // [n, V]
  Tensor p = logp_full.exp();                   // [n, V]
  Tensor grad;                                  // [n, V]
  if (g_lp.defined()) {
    // d logp_y / dz = onehot(y) - p
    Tensor g = torch::where(valid, g_lp.to(torch::kFloat32), zero);  // [n]
    grad = p * (-g).unsqueeze(1);
    grad.scatter_add_(1, safe_labels.unsqueeze(1), g.unsqueeze(1));
  }
  if (g_ent.defined()) {
    // H = -sum p log p;  dH/dz_j = -p_j (log p_j + H)
    Tensor g = torch::where(valid, g_ent.to(torch::kFloat32), zero);  // [n]
    Tensor h = -plogp(p, logp_full).sum(-1, /*keepdim=*/true);        // [n, 1]
    Tensor gh = torch::where(p > 0, -p * (logp_full + h), zero) * g.unsqueeze(1);
    grad = grad.defined() ? grad.add_(gh) : gh;
  }
  if (s.temperature != 1.0) grad.div_(s.temperature);
  return grad;
}

struct ChunkRange {
  int64_t begin, rows;
};

std::vector<ChunkRange> chunks_of(int64_t n, int64_t chunk_rows) {
  std::vector<ChunkRange> out;
  for (int64_t b = 0; b < n; b += chunk_rows) out.push_back({b, std::min(chunk_rows, n - b)});
  return out;
}

ChunkSettings settings_from_ctx(AutogradContext* ctx) {
  return {ctx->saved_data["temperature"].toDouble(), ctx->saved_data["entropy"].toBool(),
          ctx->saved_data["chunk_rows"].toInt(), ctx->saved_data["ignore_index"].toInt()};
}

void save_settings(AutogradContext* ctx, const ChunkSettings& s) {
  ctx->saved_data["temperature"] = s.temperature;
  ctx->saved_data["entropy"] = s.entropy;
  ctx->saved_data["chunk_rows"] = s.chunk_rows;
  ctx->saved_data["ignore_index"] = s.ignore_index;
}

variable_list make_outputs(int64_t n, const torch::Device& device, bool entropy) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  variable_list out{torch::empty({n}, opts)};
  if (entropy) out.push_back(torch::empty({n}, opts));
  return out;
}

class LogprobFromLogits : public torch::autograd::Function<LogprobFromLogits> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor logits, Tensor labels, double temperature, bool entropy,
                               int64_t chunk_rows, int64_t ignore_index) {
    ChunkSettings s{temperature, entropy, chunk_rows, ignore_index};
    torch::NoGradGuard no_grad;
    Tensor valid = labels != ignore_index;                                                  // [N]
    Tensor safe = torch::where(valid, labels, torch::zeros({}, labels.options()));          // [N]
    variable_list out = make_outputs(logits.size(0), logits.device(), entropy);
    for (auto c : chunks_of(logits.size(0), s.chunk_rows)) {
      chunk_forward(logits.narrow(0, c.begin, c.rows), safe.narrow(0, c.begin, c.rows), valid.narrow(0, c.begin, c.rows),
                    s, out[0].narrow(0, c.begin, c.rows), entropy ? out[1].narrow(0, c.begin, c.rows) : Tensor());
    }
    ctx->save_for_backward({logits, labels});
    save_settings(ctx, s);
    ctx->set_materialize_grads(false);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    Tensor logits = saved[0], labels = saved[1];
    ChunkSettings s = settings_from_ctx(ctx);
    Tensor g_lp = grad_out[0];
    Tensor g_ent = s.entropy ? grad_out[1] : Tensor();
    variable_list grads(6);
    if (!g_lp.defined() && !g_ent.defined()) return grads;
    torch::NoGradGuard no_grad;
    Tensor valid = labels != s.ignore_index;
    Tensor safe = torch::where(valid, labels, torch::zeros({}, labels.options()));
    Tensor grad_logits = torch::empty_like(logits);  // [N, V] in the logits' dtype, as autograd would give
    for (auto c : chunks_of(logits.size(0), s.chunk_rows)) {
      auto rows = [&](const Tensor& t) { return t.defined() ? t.narrow(0, c.begin, c.rows) : Tensor(); };
      grad_logits.narrow(0, c.begin, c.rows)
          .copy_(chunk_grad_logits(rows(logits), rows(safe), rows(valid), s, rows(g_lp), rows(g_ent)));
    }
    grads[0] = grad_logits;
    return grads;
  }
};

class LogprobFromHidden : public torch::autograd::Function<LogprobFromHidden> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor hidden, Tensor weight, Tensor labels, double temperature,
                               bool entropy, int64_t chunk_rows, int64_t ignore_index) {
    ChunkSettings s{temperature, entropy, chunk_rows, ignore_index};
    torch::NoGradGuard no_grad;
    Tensor valid = labels != ignore_index;
    Tensor safe = torch::where(valid, labels, torch::zeros({}, labels.options()));
    variable_list out = make_outputs(hidden.size(0), hidden.device(), entropy);
    for (auto c : chunks_of(hidden.size(0), s.chunk_rows)) {
      Tensor logits = hidden.narrow(0, c.begin, c.rows).matmul(weight.t());  // [n, V] in the input dtype
      chunk_forward(logits, safe.narrow(0, c.begin, c.rows), valid.narrow(0, c.begin, c.rows), s,
                    out[0].narrow(0, c.begin, c.rows), entropy ? out[1].narrow(0, c.begin, c.rows) : Tensor());
    }
    ctx->save_for_backward({hidden, weight, labels});
    save_settings(ctx, s);
    ctx->set_materialize_grads(false);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    Tensor hidden = saved[0], weight = saved[1], labels = saved[2];
    ChunkSettings s = settings_from_ctx(ctx);
    Tensor g_lp = grad_out[0];
    Tensor g_ent = s.entropy ? grad_out[1] : Tensor();
    variable_list grads(7);
    if (!g_lp.defined() && !g_ent.defined()) return grads;
    const bool want_hidden = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    torch::NoGradGuard no_grad;
    Tensor valid = labels != s.ignore_index;
    Tensor safe = torch::where(valid, labels, torch::zeros({}, labels.options()));
    Tensor grad_hidden = want_hidden ? torch::empty_like(hidden) : Tensor();  // [N, H]
    // The weight gradient sums over every chunk: accumulate in float32 whatever the weight dtype.
    Tensor grad_weight = want_weight ? torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32)) : Tensor();
    for (auto c : chunks_of(hidden.size(0), s.chunk_rows)) {
      auto rows = [&](const Tensor& t) { return t.defined() ? t.narrow(0, c.begin, c.rows) : Tensor(); };
      Tensor h = rows(hidden);                                                        // [n, H]
      Tensor g = chunk_grad_logits(h.matmul(weight.t()), rows(safe), rows(valid), s, rows(g_lp), rows(g_ent));  // [n, V] f32
      if (want_hidden) rows(grad_hidden).copy_(g.to(weight.scalar_type()).matmul(weight));
      if (want_weight) grad_weight.addmm_(g.t(), h.to(torch::kFloat32));
    }
    grads[0] = grad_hidden;
    grads[1] = want_weight ? grad_weight.to(weight.scalar_type()) : Tensor();
    return grads;
  }
};

TokenLogprobResult to_result(const variable_list& out) {
  TokenLogprobResult r;
  r.logprob = out[0];
  if (out.size() > 1) r.entropy = out[1];
  return r;
}

}  // namespace

int64_t default_chunk_rows(int64_t vocab_size) {
  return std::max<int64_t>(1, kChunkBytes / (std::max<int64_t>(vocab_size, 1) * int64_t{4}));
}

TokenLogprobResult token_logprob(const Tensor& logits, const Tensor& labels, const TokenLogprobOptions& options) {
  TUNE_CHECK(logits.defined() && logits.dim() == 2, "token_logprob: logits must be 2-D [N, V], got shape ",
             logits.defined() ? logits.sizes() : torch::IntArrayRef{});
  check_float(logits, "logits");
  TUNE_CHECK(logits.size(1) >= 1, "token_logprob: logits has an empty vocabulary dimension");
  check_labels(labels, logits.size(0), logits.size(1), options.ignore_index, logits, "logits");
  ChunkSettings s = settings_from(options, logits.size(1));
#ifdef TUNE_WITH_CUDA_KERNELS
  // The fused kernel (kernels/token_logprob.cu, bound in cuda_token_logprob.cpp); the reference
  // below is its test oracle.
  if (use_cuda_kernels(logits) && cuda::token_logprob_supported(logits.scalar_type()))
    return cuda::token_logprob(logits, labels, s.temperature, s.entropy, s.ignore_index);
#endif
  return to_result(LogprobFromLogits::apply(logits, labels, s.temperature, s.entropy, s.chunk_rows, s.ignore_index));
}

TokenLogprobResult token_logprob_from_hidden(const Tensor& hidden, const Tensor& lm_head_weight, const Tensor& labels,
                                             const TokenLogprobOptions& options) {
  TUNE_CHECK(hidden.defined() && hidden.dim() == 2, "token_logprob_from_hidden: hidden must be 2-D [N, H], got shape ",
             hidden.defined() ? hidden.sizes() : torch::IntArrayRef{});
  TUNE_CHECK(lm_head_weight.defined() && lm_head_weight.dim() == 2,
             "token_logprob_from_hidden: lm_head_weight must be 2-D [V, H], got shape ",
             lm_head_weight.defined() ? lm_head_weight.sizes() : torch::IntArrayRef{});
  check_float(hidden, "hidden");
  check_float(lm_head_weight, "lm_head_weight");
  TUNE_CHECK(hidden.scalar_type() == lm_head_weight.scalar_type(), "token_logprob_from_hidden: hidden is ",
             hidden.scalar_type(), " but lm_head_weight is ", lm_head_weight.scalar_type());
  TUNE_CHECK(hidden.device() == lm_head_weight.device(), "token_logprob_from_hidden: hidden is on ", hidden.device(),
             " but lm_head_weight is on ", lm_head_weight.device());
  TUNE_CHECK(hidden.size(1) == lm_head_weight.size(1), "token_logprob_from_hidden: hidden size ", hidden.size(1),
             " does not match lm_head_weight [V, H] = ", lm_head_weight.sizes());
  TUNE_CHECK(lm_head_weight.size(0) >= 1, "token_logprob_from_hidden: lm_head_weight has an empty vocabulary dimension");
  check_labels(labels, hidden.size(0), lm_head_weight.size(0), options.ignore_index, hidden, "hidden");
  ChunkSettings s = settings_from(options, lm_head_weight.size(0));
#ifdef TUNE_WITH_CUDA_KERNELS
  if (use_cuda_kernels(hidden) && cuda::token_logprob_supported(hidden.scalar_type()))
    return cuda::token_logprob_from_hidden(hidden, lm_head_weight, labels, s.temperature, s.entropy, s.chunk_rows,
                                           s.ignore_index);
#endif
  return to_result(LogprobFromHidden::apply(hidden, lm_head_weight, labels, s.temperature, s.entropy, s.chunk_rows,
                                            s.ignore_index));
}

}  // namespace tune::ops

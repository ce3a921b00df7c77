// LibTorch binding of the fused token log-prob kernel (kernels/token_logprob.cu).
#include "ops/cuda_bindings.h"

#ifdef TUNE_WITH_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "tune/core/error.h"
#include "tune_kernels/token_logprob.h"

namespace tune::ops::cuda {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace k = tune::kernels;

namespace {

k::DType kernel_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return k::DType::f32;
    case torch::kBFloat16: return k::DType::bf16;
    case torch::kFloat16: return k::DType::f16;
    default: fail("token_logprob (CUDA): unsupported dtype ", t);
  }
}

void check_launch(cudaError_t err, const char* what) {
  TUNE_CHECK(err == cudaSuccess, "token_logprob (CUDA): ", what, " failed: ", cudaGetErrorString(err));
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Rows must be unit-stride along the vocabulary; a row stride >= V (e.g. a narrowed chunk) is fine.
Tensor row_major(const Tensor& x) { return x.stride(1) == 1 && x.stride(0) >= x.size(1) ? x : x.contiguous(); }

k::TokenLogprobArgs args_for(const Tensor& logits, const Tensor& labels, double temperature, int64_t ignore_index) {
  k::TokenLogprobArgs a;
  a.logits = logits.data_ptr();
  a.dtype = kernel_dtype(logits.scalar_type());
  a.rows = logits.size(0);
  a.vocab = logits.size(1);
  a.row_stride = logits.stride(0);
  a.labels = labels.data_ptr<int64_t>();
  a.ignore_index = ignore_index;
  a.temperature = static_cast<float>(temperature);
  return a;
}

float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
Tensor rows_of(const Tensor& t, int64_t begin, int64_t n) { return t.defined() ? t.narrow(0, begin, n) : Tensor(); }
Tensor as_f32(const Tensor& t) { return t.defined() ? t.to(torch::kFloat32).contiguous() : Tensor(); }

// Forward of rows [begin, begin + n) from their logits [n, V] into the [N] outputs.
void forward_rows(const Tensor& logits, const Tensor& labels, double temperature, int64_t ignore_index, Tensor lp,
                  Tensor lse, Tensor ent) {
  check_launch(k::token_logprob_forward(args_for(logits, labels, temperature, ignore_index), lp.data_ptr<float>(),
                                        ptr_or_null(ent), lse.data_ptr<float>(), current_stream()),
               "forward");
}

// Gradient wrt logits [n, V] into grad (contiguous, dtype of grad).
void backward_rows(const Tensor& logits, const Tensor& labels, double temperature, int64_t ignore_index, const Tensor& lse,
                   const Tensor& ent, const Tensor& g_lp, const Tensor& g_ent, Tensor grad) {
  check_launch(k::token_logprob_backward(args_for(logits, labels, temperature, ignore_index), lse.data_ptr<float>(),
                                         ptr_or_null(ent), ptr_or_null(g_lp), ptr_or_null(g_ent), grad.data_ptr(),
                                         kernel_dtype(grad.scalar_type()), current_stream()),
               "backward");
}

variable_list new_outputs(int64_t n, const Tensor& like, bool entropy) {
  auto opts = like.options().dtype(torch::kFloat32);
  return {torch::empty({n}, opts), torch::empty({n}, opts), entropy ? torch::empty({n}, opts) : Tensor()};  // lp, lse, ent
}

class FusedLogprob : public torch::autograd::Function<FusedLogprob> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor logits, Tensor labels, double temperature, bool entropy,
                               int64_t ignore_index) {
    c10::cuda::CUDAGuard guard(logits.device());
    Tensor x = row_major(logits);  // [N, V]
    Tensor y = labels.contiguous();
    variable_list o = new_outputs(x.size(0), x, entropy);
    forward_rows(x, y, temperature, ignore_index, o[0], o[1], o[2]);
    ctx->save_for_backward(entropy ? variable_list{x, y, o[1], o[2]} : variable_list{x, y, o[1]});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->set_materialize_grads(false);
    return entropy ? variable_list{o[0], o[2]} : variable_list{o[0]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const bool entropy = saved.size() == 4;
    Tensor g_lp = as_f32(grad_out[0]), g_ent = entropy ? as_f32(grad_out[1]) : Tensor();  // [N]
    variable_list grads(5);
    if (!g_lp.defined() && !g_ent.defined()) return grads;
    c10::cuda::CUDAGuard guard(saved[0].device());
    Tensor grad = torch::empty_like(saved[0], at::MemoryFormat::Contiguous);  // [N, V], logits' dtype
    backward_rows(saved[0], saved[1], ctx->saved_data["temperature"].toDouble(), ctx->saved_data["ignore_index"].toInt(),
                  saved[2], entropy ? saved[3] : Tensor(), g_lp, g_ent, grad);
    grads[0] = grad;
    return grads;
  }
};

struct ChunkRange {
  int64_t begin, rows;
};

std::vector<ChunkRange> chunks_of(int64_t n, int64_t chunk_rows) {
  std::vector<ChunkRange> out;
  for (int64_t b = 0; b < n; b += chunk_rows) out.push_back({b, std::min(chunk_rows, n - b)});
  return out;
}

class FusedLogprobFromHidden : public torch::autograd::Function<FusedLogprobFromHidden> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor hidden, Tensor weight, Tensor labels, double temperature,
                               bool entropy, int64_t chunk_rows, int64_t ignore_index) {
    c10::cuda::CUDAGuard guard(hidden.device());
    torch::NoGradGuard no_grad;
    Tensor y = labels.contiguous();
    variable_list o = new_outputs(hidden.size(0), hidden, entropy);
    for (auto c : chunks_of(hidden.size(0), chunk_rows)) {
      Tensor logits = hidden.narrow(0, c.begin, c.rows).matmul(weight.t());  // [n, V], cuBLAS, input dtype
      forward_rows(logits, y.narrow(0, c.begin, c.rows), temperature, ignore_index, o[0].narrow(0, c.begin, c.rows),
                   o[1].narrow(0, c.begin, c.rows), rows_of(o[2], c.begin, c.rows));
    }
    ctx->save_for_backward(entropy ? variable_list{hidden, weight, y, o[1], o[2]} : variable_list{hidden, weight, y, o[1]});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->set_materialize_grads(false);
    return entropy ? variable_list{o[0], o[2]} : variable_list{o[0]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const bool entropy = saved.size() == 5;
    Tensor hidden = saved[0], weight = saved[1], y = saved[2], lse = saved[3], ent = entropy ? saved[4] : Tensor();
    Tensor g_lp = as_f32(grad_out[0]), g_ent = entropy ? as_f32(grad_out[1]) : Tensor();
    variable_list grads(7);
    if (!g_lp.defined() && !g_ent.defined()) return grads;
    const bool want_hidden = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    c10::cuda::CUDAGuard guard(hidden.device());
    torch::NoGradGuard no_grad;
    Tensor grad_hidden = want_hidden ? torch::empty_like(hidden) : Tensor();  // [N, H]
    // Summed over chunks: accumulate in float32 whatever the weight dtype (as the reference).
    Tensor grad_weight = want_weight ? torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32)) : Tensor();
    for (auto c : chunks_of(hidden.size(0), ctx->saved_data["chunk_rows"].toInt())) {
      Tensor h = hidden.narrow(0, c.begin, c.rows);  // [n, H]
      Tensor logits = h.matmul(weight.t());          // [n, V] recomputed, never saved
      Tensor g = torch::empty(logits.sizes(), logits.options().dtype(torch::kFloat32));  // [n, V]
      backward_rows(logits, y.narrow(0, c.begin, c.rows), temperature, ignore_index, lse.narrow(0, c.begin, c.rows),
                    rows_of(ent, c.begin, c.rows), rows_of(g_lp, c.begin, c.rows), rows_of(g_ent, c.begin, c.rows), g);
      if (want_hidden) grad_hidden.narrow(0, c.begin, c.rows).copy_(g.to(weight.scalar_type()).matmul(weight));
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

bool token_logprob_supported(torch::ScalarType dtype) {
  return dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16;
}

TokenLogprobResult token_logprob(const Tensor& logits, const Tensor& labels, double temperature, bool compute_entropy,
                                 int64_t ignore_index) {
  TUNE_CHECK(logits.is_cuda() && labels.is_cuda(), "token_logprob (CUDA): logits and labels must be CUDA tensors");
  TUNE_CHECK(token_logprob_supported(logits.scalar_type()), "token_logprob (CUDA): unsupported dtype ", logits.scalar_type());
  return to_result(FusedLogprob::apply(logits, labels, temperature, compute_entropy, ignore_index));
}

TokenLogprobResult token_logprob_from_hidden(const Tensor& hidden, const Tensor& weight, const Tensor& labels,
                                             double temperature, bool compute_entropy, int64_t chunk_rows,
                                             int64_t ignore_index) {
  TUNE_CHECK(hidden.is_cuda() && weight.is_cuda() && labels.is_cuda(),
             "token_logprob_from_hidden (CUDA): hidden, weight and labels must be CUDA tensors");
  TUNE_CHECK(token_logprob_supported(hidden.scalar_type()), "token_logprob_from_hidden (CUDA): unsupported dtype ",
             hidden.scalar_type());
  TUNE_CHECK(chunk_rows >= 1, "token_logprob_from_hidden (CUDA): chunk_rows must be >= 1, got ", chunk_rows);
  return to_result(FusedLogprobFromHidden::apply(hidden, weight, labels, temperature, compute_entropy, chunk_rows,
                                                 ignore_index));
}

}  // namespace tune::ops::cuda
#endif  // TUNE_WITH_CUDA_KERNELS

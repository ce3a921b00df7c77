// LibTorch bindings of the KL, GAE and group-advantage kernels (kernels/rl.cu).
#include "ops/cuda_bindings.h"

#ifdef TUNE_WITH_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "tune/core/error.h"
#include "tune_kernels/rl.h"

namespace tune::ops::cuda {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace k = tune::kernels;

namespace {

void check_launch(cudaError_t err, const char* what) {
  TUNE_CHECK(err == cudaSuccess, what, " (CUDA) failed: ", cudaGetErrorString(err));
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check_same_device(const Tensor& a, const Tensor& b, const char* what) {
  TUNE_CHECK(a.device() == b.device(), what, " (CUDA): tensors on ", a.device(), " and ", b.device());
}

Tensor f32(const Tensor& t) { return t.to(torch::kFloat32).contiguous(); }
// Bool masks are one byte per element, which is what the kernels read.
Tensor as_mask(const Tensor& m) { return (m.scalar_type() == torch::kBool ? m : m != 0).contiguous(); }
const bool* mask_ptr(const Tensor& m) { return m.data_ptr<bool>(); }

k::KlEstimator estimator(KlKind kind) {
  switch (kind) {
    case KlKind::k1: return k::KlEstimator::k1;
    case KlKind::k2: return k::KlEstimator::k2;
    case KlKind::k3: return k::KlEstimator::k3;
  }
  fail("kl_penalty (CUDA): unknown estimator");
}

// kl = f(d), d = ref - logp; backward: grad_logp = -g * f'(d), grad_ref = g * f'(d) (f' saved by the kernel).
class KlFunction : public torch::autograd::Function<KlFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor logp, Tensor ref_logp, Tensor mask, int64_t kind) {
    c10::cuda::CUDAGuard guard(logp.device());
    Tensor lp = f32(logp), ref = f32(ref_logp), m = as_mask(mask);  // [B, T]
    Tensor kl = torch::empty_like(lp), dk = torch::empty_like(lp);
    check_launch(k::kl_penalty(lp.data_ptr<float>(), ref.data_ptr<float>(), mask_ptr(m), lp.numel(),
                               estimator(static_cast<KlKind>(kind)), kl.data_ptr<float>(), dk.data_ptr<float>(),
                               current_stream()),
                 "kl_penalty");
    ctx->save_for_backward({dk});
    ctx->saved_data["logp_dtype"] = static_cast<int64_t>(logp.scalar_type());
    ctx->saved_data["ref_dtype"] = static_cast<int64_t>(ref_logp.scalar_type());
    ctx->set_materialize_grads(false);
    return {kl.to(logp.scalar_type())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    variable_list grads(4);
    if (!grad_out[0].defined()) return grads;
    Tensor gdk = grad_out[0].to(torch::kFloat32) * ctx->get_saved_variables()[0];  // [B, T]
    if (ctx->needs_input_grad(0))
      grads[0] = (-gdk).to(static_cast<torch::ScalarType>(ctx->saved_data["logp_dtype"].toInt()));
    if (ctx->needs_input_grad(1))
      grads[1] = gdk.to(static_cast<torch::ScalarType>(ctx->saved_data["ref_dtype"].toInt()));
    return grads;
  }
};

}  // namespace

Tensor kl_penalty(const Tensor& logp, const Tensor& ref_logp, const Tensor& mask, KlKind kind) {
  check_same_device(logp, ref_logp, "kl_penalty");
  check_same_device(logp, mask, "kl_penalty");
  return KlFunction::apply(logp, ref_logp, mask, static_cast<int64_t>(kind))[0];
}

GaeResult gae(const Tensor& rewards, const Tensor& values, const Tensor& mask, double gamma, double lambda) {
  check_same_device(rewards, values, "gae");
  check_same_device(rewards, mask, "gae");
  c10::cuda::CUDAGuard guard(rewards.device());
  torch::NoGradGuard no_grad;
  Tensor r = f32(rewards), v = f32(values), m = as_mask(mask);  // [B, T]
  Tensor adv = torch::empty_like(r), ret = torch::empty_like(r);
  check_launch(k::gae(r.data_ptr<float>(), v.data_ptr<float>(), mask_ptr(m), r.size(0), r.size(1),
                      static_cast<float>(gamma), static_cast<float>(lambda), adv.data_ptr<float>(), ret.data_ptr<float>(),
                      current_stream()),
               "gae");
  return {adv, ret};
}

Tensor group_advantages(const Tensor& rewards, int64_t group_size, bool scale_by_std, double eps) {
  c10::cuda::CUDAGuard guard(rewards.device());
  torch::NoGradGuard no_grad;
  Tensor r = f32(rewards);  // [B * G]
  Tensor adv = torch::empty_like(r);
  check_launch(k::group_advantages(r.data_ptr<float>(), r.numel() / group_size, group_size, scale_by_std,
                                   static_cast<float>(eps), adv.data_ptr<float>(), current_stream()),
               "group_advantages");
  return adv;
}

}  // namespace tune::ops::cuda
#endif  // TUNE_WITH_CUDA_KERNELS

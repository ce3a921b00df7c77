#include "tune/ops/kl.h"

#include "tune/core/error.h"
#ifdef TUNE_WITH_CUDA_KERNELS
#include "ops/cuda_bindings.h"
#include "tune/ops/dispatch.h"
#endif

namespace tune::ops {

using torch::Tensor;

KlKind parse_kl_kind(std::string_view name) {
  if (name == "k1") return KlKind::k1;
  if (name == "k2" || name == "mse") return KlKind::k2;
  if (name == "k3" || name == "low_var_kl") return KlKind::k3;
  usage_fail("unknown KL estimator '", name, "' (expected k1, k2 or k3)");
}

std::string_view kl_kind_name(KlKind kind) {
  switch (kind) {
    case KlKind::k1: return "k1";
    case KlKind::k2: return "k2";
    case KlKind::k3: return "k3";
  }
  return "?";
}

Tensor kl_penalty(const Tensor& logp, const Tensor& ref_logp, const Tensor& mask, KlKind kind) {
  TUNE_CHECK(logp.defined() && ref_logp.defined() && mask.defined(), "kl_penalty: undefined tensor");
  TUNE_CHECK(logp.sizes() == ref_logp.sizes() && logp.sizes() == mask.sizes(), "kl_penalty: shapes differ: logp ",
             logp.sizes(), ", ref_logp ", ref_logp.sizes(), ", mask ", mask.sizes());
  TUNE_CHECK(logp.is_floating_point() && ref_logp.is_floating_point(), "kl_penalty: log-probs must be floating point");
#ifdef TUNE_WITH_CUDA_KERNELS
  if (use_cuda_kernels(logp)) return cuda::kl_penalty(logp, ref_logp, mask, kind);
#endif
  Tensor valid = mask.scalar_type() == torch::kBool ? mask : mask != 0;
  Tensor d = ref_logp.to(logp.scalar_type()) - logp;  // log(pi_ref / pi)
  Tensor kl;
  switch (kind) {
    case KlKind::k1: kl = -d; break;
    case KlKind::k2: kl = 0.5 * d.square(); break;
    case KlKind::k3: kl = torch::expm1(d) - d; break;  // expm1 keeps precision when pi ~ pi_ref
  }
  return torch::where(valid, kl, torch::zeros({}, kl.options()));
}

}  // namespace tune::ops

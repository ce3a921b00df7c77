// Fused token log-prob: one block per row, an online log-sum-exp over the row in a single read.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "tune_kernels/token_logprob.h"

namespace tune::kernels {
namespace {

constexpr int kThreads = 512;  // 16 warps: a 151936-wide row is ~300 loads per thread
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }

__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16(v); }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half(v); }

// Calls f(v, x[v]) for this thread's share of a row. Where the row starts 16-byte aligned (every row
// when V * sizeof(T) is a multiple of 16), each thread reads 16 bytes at once (8 bf16 / 4 f32),
// then the tail of fewer than 16 bytes element-wise; otherwise element-wise, still coalesced.
template <typename T, typename F>
__device__ __forceinline__ void for_each_in_row(const T* __restrict__ x, int64_t vocab, F&& f) {
  constexpr int kVec = 16 / sizeof(T);
  int64_t done = 0;
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const int64_t nvec = vocab / kVec;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    for (int64_t i = threadIdx.x; i < nvec; i += kThreads) {
      const uint4 raw = xv[i];
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int j = 0; j < kVec; ++j) f(i * kVec + j, load(e, j));
    }
    done = nvec * kVec;
  }
  for (int64_t v = done + threadIdx.x; v < vocab; v += kThreads) f(v, load(x, v));
}

// Running softmax statistics of a set of scaled logits z: max m, s = sum exp(z - m),
// w = sum exp(z - m) * z (for the entropy). m = -inf means "empty" (or every z is -inf).
struct Online {
  float m = -INFINITY, s = 0.f, w = 0.f;

  __device__ __forceinline__ void add(float z) {
    if (z > m) {
      const float scale = expf(m - z);  // m = -inf gives 0: the old terms vanish
      s *= scale;
      w *= scale;
      m = z;
    }
    const float e = expf(z - m);
    if (e > 0.f) {  // a -inf logit adds nothing (and 0 * -inf would be NaN)
      s += e;
      w += e * z;
    }
  }

  __device__ __forceinline__ void merge(const Online& o) {
    if (o.m == -INFINITY) return;
    if (m == -INFINITY) {
      *this = o;
      return;
    }
    const float mm = fmaxf(m, o.m);
    const float a = expf(m - mm), b = expf(o.m - mm);
    s = s * a + o.s * b;
    w = w * a + o.w * b;
    m = mm;
  }
};

__device__ __forceinline__ Online warp_merge(Online x) {
  for (int off = 16; off > 0; off >>= 1) {
    Online o;
    o.m = __shfl_xor_sync(0xffffffffu, x.m, off);
    o.s = __shfl_xor_sync(0xffffffffu, x.s, off);
    o.w = __shfl_xor_sync(0xffffffffu, x.w, off);
    x.merge(o);
  }
  return x;
}

// Whole-block merge; every thread gets the result.
__device__ Online block_merge(Online x) {
  __shared__ float sm[kWarps], ss[kWarps], sw[kWarps];
  __shared__ float total_m, total_s, total_w;  // plain floats: no constructor runs on __shared__
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  x = warp_merge(x);
  if (lane == 0) {
    sm[warp] = x.m;
    ss[warp] = x.s;
    sw[warp] = x.w;
  }
  __syncthreads();
  if (warp == 0) {
    Online y;
    if (lane < kWarps) {
      y.m = sm[lane];
      y.s = ss[lane];
      y.w = sw[lane];
    }
    y = warp_merge(y);
    if (lane == 0) {
      total_m = y.m;
      total_s = y.s;
      total_w = y.w;
    }
  }
  __syncthreads();
  Online total;
  total.m = total_m;
  total.s = total_s;
  total.w = total_w;
  return total;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) forward_kernel(const T* __restrict__ logits, int64_t vocab, int64_t row_stride,
                                                           const int64_t* __restrict__ labels, int64_t ignore_index,
                                                           float temperature, float* __restrict__ logprob,
                                                           float* __restrict__ entropy, float* __restrict__ lse_out) {
  const int64_t row = blockIdx.x;
  const int64_t label = labels[row];
  if (label == ignore_index) {  // the row is never read: all its outputs (and its saved lse) are 0
    if (threadIdx.x == 0) {
      logprob[row] = 0.f;
      if (entropy) entropy[row] = 0.f;
      if (lse_out) lse_out[row] = 0.f;
    }
    return;
  }
  const T* x = logits + row * row_stride;
  const float inv_t = 1.f / temperature;
  Online acc;
  for_each_in_row(x, vocab, [&](int64_t, float xv) { acc.add(xv * inv_t); });
  const Online total = block_merge(acc);
  if (threadIdx.x != 0) return;
  const float lse = total.m + logf(total.s);
  if (lse_out) lse_out[row] = lse;
  const bool in_vocab = label >= 0 && label < vocab;
  logprob[row] = in_vocab ? load(x, label) * inv_t - lse : NAN;
  if (entropy) entropy[row] = lse - total.w / total.s;  // H = lse - E_p[z]
}

template <typename T, typename G>
__global__ void __launch_bounds__(kThreads) backward_kernel(const T* __restrict__ logits, int64_t vocab,
                                                            int64_t row_stride, const int64_t* __restrict__ labels,
                                                            int64_t ignore_index, float temperature,
                                                            const float* __restrict__ lse, const float* __restrict__ entropy,
                                                            const float* __restrict__ grad_logprob,
                                                            const float* __restrict__ grad_entropy, G* __restrict__ grad) {
  const int64_t row = blockIdx.x;
  const int64_t label = labels[row];
  G* out = grad + row * vocab;
  const float g_lp = (label == ignore_index || grad_logprob == nullptr) ? 0.f : grad_logprob[row];
  const float g_ent = (label == ignore_index || grad_entropy == nullptr) ? 0.f : grad_entropy[row];
  if (g_lp == 0.f && g_ent == 0.f) {
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) store(out, v, 0.f);
    return;
  }
  const T* x = logits + row * row_stride;
  const float l = lse[row];
  const float h = g_ent != 0.f ? entropy[row] : 0.f;
  const float inv_t = 1.f / temperature;
  for_each_in_row(x, vocab, [&](int64_t v, float xv) {
    const float logp = xv * inv_t - l;
    const float p = expf(logp);
    float d = -g_lp * p;
    if (v == label) d += g_lp;
    if (g_ent != 0.f && p > 0.f) d -= g_ent * p * (logp + h);
    store(out, v, d * inv_t);
  });
}

// Baseline for the benchmark: full float32 log-softmax written out, then gathered.
template <typename T>
__global__ void __launch_bounds__(kThreads) naive_lse_kernel(const T* __restrict__ logits, int64_t vocab,
                                                             int64_t row_stride, float temperature,
                                                             float* __restrict__ log_softmax) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * row_stride;
  const float inv_t = 1.f / temperature;
  Online acc;
  for_each_in_row(x, vocab, [&](int64_t, float xv) { acc.add(xv * inv_t); });
  const Online total = block_merge(acc);
  const float lse = total.m + logf(total.s);
  float* out = log_softmax + row * vocab;
  for (int64_t v = threadIdx.x; v < vocab; v += kThreads) out[v] = load(x, v) * inv_t - lse;
}

__global__ void naive_gather_kernel(const float* __restrict__ log_softmax, int64_t rows, int64_t vocab,
                                    const int64_t* __restrict__ labels, int64_t ignore_index, float* __restrict__ logprob) {
  const int64_t row = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (row >= rows) return;
  const int64_t y = labels[row];
  logprob[row] = y == ignore_index ? 0.f : (y >= 0 && y < vocab ? log_softmax[row * vocab + y] : NAN);
}

bool valid_shape(const TokenLogprobArgs& a) {
  return a.rows >= 0 && a.vocab >= 1 && a.row_stride >= a.vocab && a.rows <= int64_t{0x7fffffff} && a.temperature > 0.f;
}

template <typename F>
cudaError_t by_dtype(DType d, F&& f) {
  switch (d) {
    case DType::f32: return f(static_cast<const float*>(nullptr));
    case DType::bf16: return f(static_cast<const __nv_bfloat16*>(nullptr));
    case DType::f16: return f(static_cast<const __half*>(nullptr));
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t token_logprob_forward(const TokenLogprobArgs& a, float* logprob, float* entropy, float* lse,
                                  cudaStream_t stream) {
  if (!valid_shape(a) || (a.rows > 0 && (a.logits == nullptr || a.labels == nullptr || logprob == nullptr)))
    return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  return by_dtype(a.dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    forward_kernel<T><<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(
        static_cast<const T*>(a.logits), a.vocab, a.row_stride, a.labels, a.ignore_index, a.temperature, logprob, entropy,
        lse);
    return cudaGetLastError();
  });
}

cudaError_t token_logprob_backward(const TokenLogprobArgs& a, const float* lse, const float* entropy,
                                   const float* grad_logprob, const float* grad_entropy, void* grad_logits,
                                   DType grad_dtype, cudaStream_t stream) {
  if (!valid_shape(a)) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  if (a.logits == nullptr || a.labels == nullptr || lse == nullptr || grad_logits == nullptr) return cudaErrorInvalidValue;
  if (grad_entropy != nullptr && entropy == nullptr) return cudaErrorInvalidValue;
  return by_dtype(a.dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    return by_dtype(grad_dtype, [&](auto gtag) {
      using G = std::remove_const_t<std::remove_pointer_t<decltype(gtag)>>;
      backward_kernel<T, G><<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(
          static_cast<const T*>(a.logits), a.vocab, a.row_stride, a.labels, a.ignore_index, a.temperature, lse, entropy,
          grad_logprob, grad_entropy, static_cast<G*>(grad_logits));
      return cudaGetLastError();
    });
  });
}

cudaError_t token_logprob_naive(const TokenLogprobArgs& a, float* log_softmax_out, float* logprob, cudaStream_t stream) {
  if (!valid_shape(a)) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  return by_dtype(a.dtype, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    naive_lse_kernel<T><<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(
        static_cast<const T*>(a.logits), a.vocab, a.row_stride, a.temperature, log_softmax_out);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const unsigned blocks = static_cast<unsigned>((a.rows + 255) / 256);
    naive_gather_kernel<<<blocks, 256, 0, stream>>>(log_softmax_out, a.rows, a.vocab, a.labels, a.ignore_index, logprob);
    return cudaGetLastError();
  });
}

}  // namespace tune::kernels

// tune_kernel_tests: the torch-free CUDA kernels against plain C++ references (double precision),
// on fresh random inputs at awkward sizes; and, with --bench FILE, a benchmark of the fused token
// log-prob against the materialised log-softmax baseline, written as JSON.
//
//   tune_kernel_tests                     run every check; exit 0 pass, 1 fail, 77 no CUDA device
//   tune_kernel_tests --bench out.json [--rows N] [--vocab V] [--repeats R]
//
// The seed is printed; TUNE_KERNEL_SEED=<n> replays a run.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tune_kernels/rl.h"
#include "tune_kernels/token_logprob.h"

namespace k = tune::kernels;

namespace {

#define CHECK_CUDA(expr)                                                                               \
  do {                                                                                                 \
    cudaError_t err_ = (expr);                                                                         \
    if (err_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(err_)); \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

std::mt19937_64 rng;
int failures = 0;

// Device buffer that frees itself.
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n) : count(n) { CHECK_CUDA(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (count) CHECK_CUDA(cudaMemcpy(ptr, host.data(), count * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> to_host() const {
    std::vector<T> out(count);
    if (count) CHECK_CUDA(cudaMemcpy(out.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
    return out;
  }
};

// |got - want| <= atol + rtol * |want|, NaN only where the reference is NaN. Prints the first misses.
bool compare(const char* what, const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol) {
  double worst = 0;
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    const bool ok = std::isnan(w) ? std::isnan(g) : (std::isfinite(g) && std::fabs(g - w) <= atol + rtol * std::fabs(w));
    if (std::isfinite(g) && std::isfinite(w)) worst = std::max(worst, std::fabs(g - w));
    if (!ok && bad++ < 5) std::printf("    %s[%zu]: got %.9g want %.9g\n", what, i, g, w);
  }
  std::printf("  %-44s %s (max abs err %.3g, atol %.1g rtol %.1g, %zu values)\n", what, bad ? "FAIL" : "ok", worst, atol,
              rtol, want.size());
  if (bad) ++failures;
  return bad == 0;
}

float round_to(k::DType d, float x) {
  switch (d) {
    case k::DType::bf16: return __bfloat162float(__float2bfloat16(x));
    case k::DType::f16: return __half2float(__float2half(x));
    default: return x;
  }
}

const char* dtype_name(k::DType d) { return d == k::DType::f32 ? "f32" : d == k::DType::bf16 ? "bf16" : "f16"; }
size_t dtype_bytes(k::DType d) { return d == k::DType::f32 ? 4 : 2; }

// Host logits (already rounded to the element type) packed into that type's bytes.
std::vector<unsigned char> pack(const std::vector<float>& x, k::DType d) {
  std::vector<unsigned char> out(x.size() * dtype_bytes(d));
  for (size_t i = 0; i < x.size(); ++i) {
    if (d == k::DType::f32) {
      std::memcpy(&out[i * 4], &x[i], 4);
    } else if (d == k::DType::bf16) {
      __nv_bfloat16 b = __float2bfloat16(x[i]);
      std::memcpy(&out[i * 2], &b, 2);
    } else {
      __half h = __float2half(x[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

std::vector<float> unpack(const std::vector<unsigned char>& bytes, k::DType d) {
  const size_t n = bytes.size() / dtype_bytes(d);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (d == k::DType::f32) {
      std::memcpy(&out[i], &bytes[i * 4], 4);
    } else if (d == k::DType::bf16) {
      __nv_bfloat16 b;
      std::memcpy(&b, &bytes[i * 2], 2);
      out[i] = __bfloat162float(b);
    } else {
      __half h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = __half2float(h);
    }
  }
  return out;
}

// ---- token log-prob ------------------------------------------------------------------------------

struct LogprobRef {
  std::vector<double> logp, entropy, lse, grad;  // grad [N, V]
};

// The oracle, in double: the definition in tune_kernels/token_logprob.h (same as tune::ops::token_logprob).
LogprobRef logprob_reference(const std::vector<float>& x, const std::vector<int64_t>& labels, int64_t n, int64_t v,
                             double temperature, const std::vector<float>& g_lp, const std::vector<float>& g_ent) {
  LogprobRef r;
  r.logp.assign(n, 0);
  r.entropy.assign(n, 0);
  r.lse.assign(n, 0);
  r.grad.assign(n * v, 0);
  std::vector<double> z(v);
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY;
    for (int64_t j = 0; j < v; ++j) m = std::max(m, z[j] = x[i * v + j] / temperature);
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(z[j] - m);
    const double lse = m + std::log(s);
    if (labels[i] == -100) continue;  // ignored rows: every output 0, the saved lse too
    r.lse[i] = lse;
    double h = 0;
    for (int64_t j = 0; j < v; ++j) h -= std::exp(z[j] - lse) * (z[j] - lse);
    r.logp[i] = z[labels[i]] - lse;
    r.entropy[i] = h;
    for (int64_t j = 0; j < v; ++j) {
      const double lp = z[j] - lse, p = std::exp(lp);
      double d = -g_lp[i] * p + (j == labels[i] ? g_lp[i] : 0.0) - g_ent[i] * p * (lp + h);
      r.grad[i * v + j] = d / temperature;
    }
  }
  return r;
}

struct LogprobCase {
  int64_t rows, vocab;
  k::DType dtype;
  float temperature;
  bool all_ignored;
};

void test_token_logprob(const LogprobCase& c) {
  std::printf("token_logprob N=%lld V=%lld %s T=%g%s\n", static_cast<long long>(c.rows), static_cast<long long>(c.vocab),
              dtype_name(c.dtype), c.temperature, c.all_ignored ? " all-ignored" : "");
  const int64_t n = c.rows, v = c.vocab;
  std::normal_distribution<float> normal(0.f, 3.f);
  std::uniform_int_distribution<int64_t> label_dist(0, v - 1);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  std::vector<float> x(n * v);
  for (auto& e : x) e = round_to(c.dtype, normal(rng));
  // One raised token per row (p ~ 1e-2), so probabilities span many decades. A near-certain token
  // is avoided on purpose: 1 - p there is ill-conditioned in float32 for any implementation.
  for (int64_t i = 0; i < n; ++i) x[i * v + label_dist(rng)] = round_to(c.dtype, 10.f);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = label_dist(rng);
    if (i % 5 == 3) labels[i] = -100;  // some ignored rows
    if (i == 1) labels[i] = v - 1;     // the vocabulary's edges
    if (i == 2) labels[i] = 0;
    if (c.all_ignored) labels[i] = -100;
  }
  std::vector<float> g_lp(n), g_ent(n);
  for (int64_t i = 0; i < n; ++i) g_lp[i] = unit(rng), g_ent[i] = unit(rng);
  const LogprobRef ref = logprob_reference(x, labels, n, v, c.temperature, g_lp, g_ent);

  const auto bytes = pack(x, c.dtype);
  DeviceBuffer<unsigned char> d_x(bytes);
  DeviceBuffer<int64_t> d_labels(labels);
  DeviceBuffer<float> d_lp(n), d_ent(n), d_lse(n), d_glp(g_lp), d_gent(g_ent);
  k::TokenLogprobArgs args{d_x.ptr, c.dtype, n, v, v, d_labels.ptr, -100, c.temperature};
  CHECK_CUDA(k::token_logprob_forward(args, d_lp.ptr, d_ent.ptr, d_lse.ptr, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  // float32 accumulation over up to 151936 terms (|z| <~ 20); the reference is double.
  compare("logprob", d_lp.to_host(), ref.logp, 1e-4, 1e-5);
  compare("entropy", d_ent.to_host(), ref.entropy, 1e-4, 1e-5);
  compare("lse", d_lse.to_host(), ref.lse, 1e-4, 1e-5);

  // Without the optional outputs the log-prob is the same.
  DeviceBuffer<float> d_lp2(n);
  CHECK_CUDA(k::token_logprob_forward(args, d_lp2.ptr, nullptr, nullptr, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  compare("logprob (no entropy, no lse)", d_lp2.to_host(), ref.logp, 1e-4, 1e-5);

  // Backward into the logits' type and into float32.
  for (k::DType g : {c.dtype, k::DType::f32}) {
    DeviceBuffer<unsigned char> d_grad(n * v * dtype_bytes(g));
    CHECK_CUDA(k::token_logprob_backward(args, d_lse.ptr, d_ent.ptr, d_glp.ptr, d_gent.ptr, d_grad.ptr, g, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    // Rounding the gradient to bf16/f16 costs a relative 2^-9 / 2^-12.
    const double rtol = g == k::DType::f32 ? 1e-4 : g == k::DType::bf16 ? 8e-3 : 1e-3;
    const std::string what = std::string("grad_logits (") + dtype_name(g) + ")";
    // Entries are ~p ~ 1e-5 for most of the vocabulary: atol 1e-8 keeps them meaningful; f16
    // stores values below 6e-5 as subnormals with an absolute spacing of 6e-8.
    const double atol = g == k::DType::f16 ? 6e-8 : 1e-8;
    compare(what.c_str(), unpack(d_grad.to_host(), g), ref.grad, atol, rtol);
    if (g == c.dtype && g == k::DType::f32) break;
  }
  // Only the log-prob gradient flowing (entropy not requested).
  {
    std::vector<float> zero(n, 0.f);
    const LogprobRef ref_lp = logprob_reference(x, labels, n, v, c.temperature, g_lp, zero);
    DeviceBuffer<float> d_grad(n * v);
    CHECK_CUDA(k::token_logprob_backward(args, d_lse.ptr, nullptr, d_glp.ptr, nullptr, d_grad.ptr, k::DType::f32, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    compare("grad_logits (logprob only, f32)", d_grad.to_host(), ref_lp.grad, 1e-8, 1e-4);
  }
}

// ---- KL, GAE, group advantages -------------------------------------------------------------------

void test_kl(int64_t b, int64_t t) {
  std::printf("kl_penalty B=%lld T=%lld\n", static_cast<long long>(b), static_cast<long long>(t));
  std::normal_distribution<float> lp(-2.f, 1.5f), noise(0.f, 0.3f);
  std::bernoulli_distribution keep(0.7);
  const int64_t n = b * t;
  std::vector<float> logp(n), ref(n);
  std::vector<unsigned char> mask_bytes(n);
  for (int64_t i = 0; i < n; ++i) {
    logp[i] = lp(rng);
    ref[i] = i % 7 == 0 ? logp[i] : logp[i] + noise(rng);  // d = 0 exactly on some tokens
    mask_bytes[i] = keep(rng) && (i / t) != 1;            // row 1 fully masked
  }
  DeviceBuffer<float> d_logp(logp), d_ref(ref), d_kl(n), d_dk(n);
  DeviceBuffer<unsigned char> d_mask(mask_bytes);
  for (auto kind : {k::KlEstimator::k1, k::KlEstimator::k2, k::KlEstimator::k3}) {
    std::vector<double> want(n), want_dk(n);
    for (int64_t i = 0; i < n; ++i) {
      if (!mask_bytes[i]) continue;
      const double d = static_cast<double>(ref[i]) - logp[i];
      want[i] = kind == k::KlEstimator::k1 ? -d : kind == k::KlEstimator::k2 ? 0.5 * d * d : std::expm1(d) - d;
      want_dk[i] = kind == k::KlEstimator::k1 ? -1.0 : kind == k::KlEstimator::k2 ? d : std::expm1(d);
    }
    CHECK_CUDA(k::kl_penalty(d_logp.ptr, d_ref.ptr, reinterpret_cast<const bool*>(d_mask.ptr), n, kind, d_kl.ptr, d_dk.ptr,
                             nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    const std::string name = "k" + std::to_string(static_cast<int>(kind) + 1);
    // d itself carries float32 rounding of ref - logp (|logp| <~ 8): atol 2e-6.
    compare(name.c_str(), d_kl.to_host(), want, 2e-6, 1e-5);
    compare((name + " dk/dd").c_str(), d_dk.to_host(), want_dk, 2e-6, 1e-5);
  }
}

void test_gae(int64_t b, int64_t t) {
  std::printf("gae B=%lld T=%lld\n", static_cast<long long>(b), static_cast<long long>(t));
  std::normal_distribution<float> normal(0.f, 1.f);
  std::bernoulli_distribution keep(0.75);
  const int64_t n = b * t;
  std::vector<float> r(n), v(n);
  std::vector<unsigned char> mask(n);
  for (int64_t i = 0; i < n; ++i) {
    r[i] = normal(rng), v[i] = normal(rng);
    const int64_t row = i / t;
    mask[i] = row == 0 ? 1 : row == 1 ? 0 : keep(rng);  // row 0 all valid, row 1 all masked, the rest with gaps
  }
  const double gamma = 0.99, lambda = 0.95;
  std::vector<double> adv(n, 0), ret(n, 0);
  for (int64_t row = 0; row < b; ++row) {
    double next_v = 0, next_a = 0;
    for (int64_t s = t - 1; s >= 0; --s) {
      const int64_t i = row * t + s;
      if (!mask[i]) continue;
      const double a = r[i] + gamma * next_v - v[i] + gamma * lambda * next_a;
      adv[i] = a;
      ret[i] = a + v[i];
      next_a = a;
      next_v = v[i];
    }
  }
  DeviceBuffer<float> d_r(r), d_v(v), d_adv(n), d_ret(n);
  DeviceBuffer<unsigned char> d_mask(mask);
  CHECK_CUDA(k::gae(d_r.ptr, d_v.ptr, reinterpret_cast<const bool*>(d_mask.ptr), b, t, static_cast<float>(gamma),
                    static_cast<float>(lambda), d_adv.ptr, d_ret.ptr, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  // A float32 recurrence over up to T steps with |A| ~ 10: atol 1e-4.
  compare("advantages", d_adv.to_host(), adv, 1e-4, 1e-5);
  compare("returns", d_ret.to_host(), ret, 1e-4, 1e-5);
}

void test_group_advantages(int64_t groups, int64_t g) {
  std::printf("group_advantages groups=%lld G=%lld\n", static_cast<long long>(groups), static_cast<long long>(g));
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const int64_t n = groups * g;
  std::vector<float> r(n);
  for (int64_t i = 0; i < n; ++i) r[i] = (i / g) == 0 ? 1.f : std::round(unit(rng) * 4.f) / 4.f + 10.f;  // group 0 constant
  DeviceBuffer<float> d_r(r), d_adv(n);
  for (bool scale : {true, false}) {
    std::vector<double> want(n);
    for (int64_t q = 0; q < groups; ++q) {
      double mean = 0;
      for (int64_t j = 0; j < g; ++j) mean += r[q * g + j];
      mean /= g;
      double sq = 0;
      for (int64_t j = 0; j < g; ++j) sq += (r[q * g + j] - mean) * (r[q * g + j] - mean);
      const double div = scale && g > 1 ? std::sqrt(sq / (g - 1)) + 1e-4 : 1.0;
      for (int64_t j = 0; j < g; ++j) want[q * g + j] = (r[q * g + j] - mean) / div;
    }
    CHECK_CUDA(k::group_advantages(d_r.ptr, groups, g, scale, 1e-4f, d_adv.ptr, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    // Rewards ~10 in float32: mean carries ~1e-6 absolute error, amplified by 1/std (>= ~0.1).
    compare(scale ? "advantages (scaled by std)" : "advantages (Dr. GRPO, no std)", d_adv.to_host(), want, 5e-5, 1e-4);
  }
}

// ---- benchmark ---------------------------------------------------------------------------------

// Deterministic pseudo-random logits on the device (a hash, so 2.5e9 values fill in milliseconds).
template <typename T>
__global__ void fill_logits(T* x, int64_t count, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t h = (static_cast<uint64_t>(i) + seed) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    const float u = static_cast<float>(h >> 40) * (1.f / 16777216.f);  // [0, 1)
    const float val = (u - 0.5f) * 12.f;
    if constexpr (sizeof(T) == 4) x[i] = val;
    else x[i] = __float2bfloat16(val);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

template <typename F>
double time_ms(F&& launch, int repeats) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) CHECK_CUDA(launch());  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    CHECK_CUDA(launch());
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

int run_bench(const char* path, int64_t n, int64_t v, int repeats) {
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::FILE* f = std::fopen(path, "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path);
    return 1;
  }
  std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"rows\": %lld,\n  \"vocab\": %lld,\n  \"repeats\": %d,\n  \"results\": [\n",
               prop.name, static_cast<long long>(n), static_cast<long long>(v), repeats);
  std::vector<int64_t> labels(n);
  std::uniform_int_distribution<int64_t> label_dist(0, v - 1);
  for (int64_t i = 0; i < n; ++i) labels[i] = i % 10 == 9 ? -100 : label_dist(rng);
  DeviceBuffer<int64_t> d_labels(labels);
  bool first = true;
  for (k::DType dt : {k::DType::bf16, k::DType::f32}) {
    const size_t in_bytes = static_cast<size_t>(n) * v * dtype_bytes(dt);
    DeviceBuffer<unsigned char> d_x(in_bytes);
    if (dt == k::DType::f32) fill_logits<<<4096, 256>>>(reinterpret_cast<float*>(d_x.ptr), n * v, 12345);
    else fill_logits<<<4096, 256>>>(reinterpret_cast<__nv_bfloat16*>(d_x.ptr), n * v, 12345);
    CHECK_CUDA(cudaGetLastError());
    k::TokenLogprobArgs args{d_x.ptr, dt, n, v, v, d_labels.ptr, -100, 1.0f};
    DeviceBuffer<float> d_lp(n), d_ent(n), d_lse(n), d_glp(std::vector<float>(n, -1.f));
    const double fused = time_ms([&] { return k::token_logprob_forward(args, d_lp.ptr, nullptr, d_lse.ptr, nullptr); }, repeats);
    const double fused_ent =
        time_ms([&] { return k::token_logprob_forward(args, d_lp.ptr, d_ent.ptr, d_lse.ptr, nullptr); }, repeats);
    double backward = 0;
    {
      DeviceBuffer<unsigned char> d_grad(in_bytes);  // the gradient in the logits' type, as autograd returns it
      backward = time_ms(
          [&] { return k::token_logprob_backward(args, d_lse.ptr, nullptr, d_glp.ptr, nullptr, d_grad.ptr, dt, nullptr); },
          repeats);
    }
    const std::vector<float> fused_lp = d_lp.to_host();
    double naive = 0;
    size_t naive_extra = static_cast<size_t>(n) * v * 4 + static_cast<size_t>(n) * 4;
    double max_diff = 0;
    {
      DeviceBuffer<float> d_ls(static_cast<size_t>(n) * v), d_lp_naive(n);
      naive = time_ms([&] { return k::token_logprob_naive(args, d_ls.ptr, d_lp_naive.ptr, nullptr); }, repeats);
      const std::vector<float> naive_lp = d_lp_naive.to_host();
      for (int64_t i = 0; i < n; ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(naive_lp[i] - fused_lp[i])));
    }
    const size_t fused_extra = static_cast<size_t>(n) * 4 * 2;  // logprob + lse
    const double gbps = in_bytes / (fused * 1e-3) / 1e9;
    std::printf("bench %s N=%lld V=%lld: fused %.3f ms (%.0f GB/s), +entropy %.3f ms, backward %.3f ms, naive %.3f ms, "
                "speedup %.2fx, extra memory fused %.1f KiB vs naive %.1f MiB, max |diff| %.2g\n",
                dtype_name(dt), static_cast<long long>(n), static_cast<long long>(v), fused, gbps, fused_ent, backward, naive,
                naive / fused, fused_extra / 1024.0, naive_extra / 1048576.0, max_diff);
    std::fprintf(f,
                 "%s    {\"dtype\": \"%s\", \"fused_forward_ms\": %.4f, \"fused_forward_entropy_ms\": %.4f, "
                 "\"fused_backward_ms\": %.4f, \"naive_forward_ms\": %.4f, \"speedup\": %.3f, \"fused_read_gbps\": %.1f, "
                 "\"fused_extra_bytes\": %zu, \"naive_extra_bytes\": %zu, \"max_abs_diff_vs_naive\": %.3g}",
                 first ? "" : ",\n", dtype_name(dt), fused, fused_ent, backward, naive, naive / fused, gbps, fused_extra,
                 naive_extra, max_diff);
    first = false;
  }
  std::fprintf(f, "\n  ]\n}\n");
  std::fclose(f);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device (the kernels compiled; run this on a GPU machine)\n");
    return 77;
  }
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("TUNE_KERNEL_SEED")) seed = std::strtoull(s, nullptr, 10);
  rng.seed(seed);
  std::printf("seed %llu (TUNE_KERNEL_SEED replays)\n", static_cast<unsigned long long>(seed));

  const char* bench = nullptr;
  int64_t rows = 16384, vocab = 151936;
  int repeats = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bench" && i + 1 < argc) bench = argv[++i];
    else if (a == "--rows" && i + 1 < argc) rows = std::atoll(argv[++i]);
    else if (a == "--vocab" && i + 1 < argc) vocab = std::atoll(argv[++i]);
    else if (a == "--repeats" && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--bench out.json [--rows N] [--vocab V] [--repeats R]]\n", argv[0]);
      return 2;
    }
  }
  if (bench) return run_bench(bench, rows, vocab, repeats);

  const LogprobCase cases[] = {
      {1, 32000, k::DType::f32, 1.f, false},     {13, 32001, k::DType::f32, 1.f, false},
      {13, 151936, k::DType::f32, 1.f, false},   {1, 151936, k::DType::bf16, 1.f, false},
      {13, 32001, k::DType::bf16, 0.7f, false},  {13, 151936, k::DType::bf16, 1.f, false},
      {13, 32000, k::DType::f16, 1.3f, false},   {4, 32000, k::DType::bf16, 1.f, true},
      {3, 7, k::DType::f32, 1.f, false},  // a vocabulary smaller than one warp
  };
  for (const auto& c : cases) test_token_logprob(c);
  test_kl(13, 37);
  test_kl(1, 1);
  test_gae(13, 37);
  test_gae(1, 1);
  test_group_advantages(7, 1);
  test_group_advantages(7, 5);
  test_group_advantages(13, 16);
  if (failures) {
    std::printf("FAILED: %d comparison(s)\n", failures);
    return 1;
  }
  std::printf("all kernel checks passed\n");
  return 0;
}

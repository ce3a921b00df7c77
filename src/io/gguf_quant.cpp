// float32 -> F16, BF16 and Q8_0, bit-identical to the `gguf` Python package's quantize (which
// convert_hf_to_gguf.py uses) and to llama.cpp's reference quantisers. Compiled without FMA
// contraction (src/CMakeLists.txt) so Q8_0's x * (1/d) is the single rounding the package does.
#include <cmath>
#include <cstring>

#include "tune/core/error.h"
#include "tune/io/gguf_writer.h"

namespace tune::io {
namespace {

uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

// m >> shift rounded to nearest, ties to even (shift >= 1).
uint32_t shift_round_even(uint32_t m, unsigned shift) {
  if (shift >= 32) return 0;
  const uint32_t q = m >> shift, rem = m & ((uint32_t{1} << shift) - 1), half = uint32_t{1} << (shift - 1);
  return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
}

void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

constexpr size_t kQ8Block = 32;

}  // namespace

uint16_t fp32_to_fp16(float v) {
  // numpy's npy_floatbits_to_halfbits (what `astype(np.float16)` does): round to nearest even at
  // every magnitude, subnormal halves included.
  const uint32_t f = bits_of(v);
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000);
  const uint32_t a = f & 0x7FFFFFFF;
  if (a > 0x7F800000) {  // NaN: keep the top 10 mantissa bits, but never let it become Inf
    uint16_t h = static_cast<uint16_t>(0x7C00 | ((a & 0x7FFFFF) >> 13));
    if (h == 0x7C00) h = 0x7C01;
    return sign | h;
  }
  // 65520 (0x477FF000) is halfway between the largest half, 65504 (odd mantissa), and 2^16: it
  // and everything above round to infinity.
  if (a >= 0x477FF000) return sign | 0x7C00;
  if (a >= 0x38800000)  // a normal half (>= 2^-14): rebias the exponent, round the mantissa
    return sign | static_cast<uint16_t>(shift_round_even(a - 0x38000000, 13));
  // A subnormal half: the value in units of 2^-24. Float subnormals (exponent 0) are below 2^-126.
  const uint32_t e = a >> 23;
  if (e == 0) return sign;
  const uint32_t m = (a & 0x7FFFFF) | 0x800000;  // value = m * 2^(e - 150)
  return sign | static_cast<uint16_t>(shift_round_even(m, 126 - e));
}

uint16_t fp32_to_bf16(float v) {
  // ggml_compute_fp32_to_bf16 (and gguf.quants.BF16): NaN made quiet, otherwise round to nearest even.
  const uint32_t u = bits_of(v);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((static_cast<uint64_t>(u) + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

uint64_t ggml_nbytes(GgmlType type, uint64_t n) {
  const GgmlTypeTraits& t = ggml_traits(type);
  if (n % t.block_size != 0)
    fail("GGUF: ", n, " values are not a whole number of ", t.name, " blocks of ", t.block_size);
  return n / t.block_size * t.type_size;
}

void quantize(GgmlType type, std::span<const float> in, std::span<uint8_t> out) {
  const GgmlTypeTraits& t = ggml_traits(type);
  if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16 && type != GgmlType::Q8_0)
    fail("GGUF: quantising to ", t.name, " is not supported (supported: F32, F16, BF16, Q8_0)");
  if (ggml_nbytes(type, in.size()) != out.size())
    fail("GGUF: quantising ", in.size(), " values to ", t.name, " needs ", ggml_nbytes(type, in.size()),
         " bytes, the buffer has ", out.size());
  uint8_t* o = out.data();
  switch (type) {
    case GgmlType::F32:
      if (!in.empty()) std::memcpy(o, in.data(), in.size() * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < in.size(); ++i) store_u16(o + 2 * i, fp32_to_fp16(in[i]));
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < in.size(); ++i) store_u16(o + 2 * i, fp32_to_bf16(in[i]));
      return;
    default: break;
  }
  // Q8_0 (quantize_row_q8_0_ref, gguf.quants.Q8_0): per block of 32, d = amax / 127 in float32,
  // id = 1/d (0 for an all-zero block), q = round(x * id) half away from zero, d stored as F16.
  for (size_t b = 0; b < in.size() / kQ8Block; ++b) {
    const float* x = in.data() + b * kQ8Block;
    uint8_t* y = o + b * (2 + kQ8Block);
    float amax = 0.0f;
    // NaN propagates, as numpy's max does.
    for (size_t j = 0; j < kQ8Block; ++j) {
      const float a = std::fabs(x[j]);
      if (a > amax || std::isnan(a)) amax = std::isnan(amax) ? amax : a;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(y, fp32_to_fp16(d));
    for (size_t j = 0; j < kQ8Block; ++j) {
      const float q = std::round(x[j] * id);  // std::round: half away from zero, as np_roundf
      // Finite inputs give |q| <= 127. A NaN (an Inf or NaN in the block) becomes 0, which is what
      // numpy's float -> int8 cast gives on x86 (cvttss2si's 0x80000000, low byte 0).
      y[2 + j] = q >= -128.0f && q <= 127.0f ? static_cast<uint8_t>(static_cast<int8_t>(q)) : 0;
    }
  }
}

}  // namespace tune::io

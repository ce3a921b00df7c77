// Dequantisation of ggml block types to float32, written from the block layouts in ggml-common.h.
// Each value is computed with the float32 operations of the `gguf` Python package's dequantiser,
// in its order (a product of two scale factors first, then the quant, then the offset), so results
// agree bit for bit. This file is compiled with -ffp-contract=off (src/CMakeLists.txt): a fused
// multiply-add would round differently.
#include <cstring>

#include "tune/core/error.h"
#include "tune/io/gguf.h"

namespace tune::io {
namespace {

constexpr int QK = 32;    // elements per block of the legacy types
constexpr int QK_K = 256; // elements per super-block of the K-quants

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// IEEE half -> float, exact (subnormals, infinities, NaN payloads kept as numpy keeps them).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_float(sign);
  // Subnormal half: normalise.
  int e = 113;
  while ((mant & 0x400) == 0) {
    mant <<= 1;
    --e;
  }
  mant &= 0x3FF;
  return bits_to_float(sign | (static_cast<uint32_t>(e) << 23) | (mant << 13));
}

uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
float f16(const uint8_t* p) { return half_to_float(u16(p)); }

// Legacy 32-element blocks. Nibble j of byte j is element j, the high nibble element j + 16.
void q4_0(const uint8_t* b, float* y) {  // d, qs[16]:  x = d * (q - 8)
  const float d = f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < QK / 2; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0xF) - 8);
    y[j + QK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void q4_1(const uint8_t* b, float* y) {  // d, m, qs[16]:  x = d * q + m
  const float d = f16(b), m = f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < QK / 2; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0xF) + m;
    y[j + QK / 2] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// Q5: bit j of the 32-bit qh is the fifth bit of element j.
void q5_0(const uint8_t* b, float* y) {  // d, qh[4], qs[16]:  x = d * (q - 16)
  const float d = f16(b);
  const uint32_t qh = u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < QK / 2; ++j) {
    const int lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + QK / 2] = d * static_cast<float>(hi - 16);
  }
}

void q5_1(const uint8_t* b, float* y) {  // d, m, qh[4], qs[16]:  x = d * q + m
  const float d = f16(b), m = f16(b + 2);
  const uint32_t qh = u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < QK / 2; ++j) {
    const int lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + QK / 2] = d * static_cast<float>(hi) + m;
  }
}

void q8_0(const uint8_t* b, float* y) {  // d, qs[32] int8:  x = q * d
  const float d = f16(b);
  for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// K-quants: 256-element super-blocks.

// Q2_K: scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64] (2 bits each),
// d, dmin. Element 128*h + 32*s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1 of qs[32h + l], in
// sub-block 8h + 2s + l/16.
void q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = f16(b + 80), dmin = f16(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int sub = 8 * h + 2 * s + l / 16;
        const float dl = d * static_cast<float>(scales[sub] & 0xF);
        const float ml = dmin * static_cast<float>(scales[sub] >> 4);
        const int q = (qs[32 * h + l] >> (2 * s)) & 3;
        y[128 * h + 32 * s + l] = dl * static_cast<float>(q) - ml;
      }
}

// Q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales, offset by 32), d. Element
// 128*h + 32*s + l: low 2 bits from qs[32h + l] at shift 2s, high bit from hmask[l] bit 4h + s; a
// clear high bit subtracts 4.
void q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = f16(b + 108);
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    // Low 4 bits: nibble i/8 of byte i%8; high 2 bits: bits 2*(i/4) of byte 8 + i%4.
    const int low = (sc[i % 8] >> (4 * (i / 8))) & 0xF;
    const int high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    dl[i] = d * static_cast<float>((low | (high << 4)) - 32);
  }
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int sub = 8 * h + 2 * s + l / 16;
        const int low = (qs[32 * h + l] >> (2 * s)) & 3;
        const int high = (hmask[l] >> (4 * h + s)) & 1;
        y[128 * h + 32 * s + l] = dl[sub] * static_cast<float>(low - (high ? 0 : 4));
      }
}

// The eight 6-bit (scale, min) pairs of Q4_K / Q5_K, packed in 12 bytes.
void scale_min_k4(const uint8_t* q, int j, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K: d, dmin, scales[12], qs[128]. Sub-block j (32 elements) of chunk c = j/2 reads the low
// (even j) or high (odd j) nibbles of qs[32c .. 32c + 31].
void q4_k(const uint8_t* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(scales, j, sc, m);
    const float dj = d * static_cast<float>(sc), mj = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = dj * static_cast<float>((q[l] >> shift) & 0xF) - mj;
  }
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus bit j of qh[l] as the fifth bit.
void q5_k(const uint8_t* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(scales, j, sc, m);
    const float dj = d * static_cast<float>(sc), mj = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0xF) | (((qh[l] >> j) & 1) << 4);
      y[32 * j + l] = dj * static_cast<float>(v) - mj;
    }
  }
}

// Q6_K: ql[128], qh[64], scales[16] int8, d. Element 128*h + 32*s + l: low nibble of
// ql[64h + 32*(s%2) + l] (high nibble for s >= 2), two high bits of qh[32h + l] at shift 2s;
// minus 32; scale 8h + 2s + l/16.
void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16(b + 208);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s) {
      for (int l = 0; l < 32; ++l) {
        const int sub = 8 * h + 2 * s + l / 16;
        const int low = (ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xF;
        const int high = (qh[32 * h + l] >> (2 * s)) & 3;
        const float ds = d * static_cast<float>(scales[sub]);
        y[128 * h + 32 * s + l] = ds * static_cast<float>((low | (high << 4)) - 32);
      }
    }
}

// Q8_K: d (float32), qs[256] int8, bsums[16] (sums for dot products, unused here).
void q8_k(const uint8_t* b, float* y) {
  const float d = bits_to_float(u32(b));
  for (int j = 0; j < QK_K; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
}

}  // namespace

void dequantize(GgmlType type, std::span<const uint8_t> bytes, std::span<float> out) {
  const GgmlTypeTraits& t = ggml_traits(type);
  if (!t.dequantizable) fail("dequantize: ggml type ", t.name, " is not supported");
  if (out.size() % t.block_size != 0)
    fail("dequantize: ", out.size(), " elements are not a multiple of the ", t.name, " block size ", t.block_size);
  const size_t blocks = out.size() / t.block_size;
  if (bytes.size() != blocks * t.type_size)
    fail("dequantize: ", out.size(), " elements of ", t.name, " need ", blocks * t.type_size, " bytes, got ",
         bytes.size());
  const uint8_t* b = bytes.data();
  float* y = out.data();
  void (*block)(const uint8_t*, float*) = nullptr;
  switch (type) {
    case GgmlType::F32:
      if (!out.empty()) std::memcpy(y, b, out.size() * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < out.size(); ++i) y[i] = f16(b + 2 * i);
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < out.size(); ++i) y[i] = bits_to_float(static_cast<uint32_t>(u16(b + 2 * i)) << 16);
      return;
    case GgmlType::Q4_0: block = q4_0; break;
    case GgmlType::Q4_1: block = q4_1; break;
    case GgmlType::Q5_0: block = q5_0; break;
    case GgmlType::Q5_1: block = q5_1; break;
    case GgmlType::Q8_0: block = q8_0; break;
    case GgmlType::Q2_K: block = q2_k; break;
    case GgmlType::Q3_K: block = q3_k; break;
    case GgmlType::Q4_K: block = q4_k; break;
    case GgmlType::Q5_K: block = q5_k; break;
    case GgmlType::Q6_K: block = q6_k; break;
    case GgmlType::Q8_K: block = q8_k; break;
    default: fail("dequantize: ggml type ", t.name, " is not supported");
  }
  for (size_t i = 0; i < blocks; ++i) block(b + i * t.type_size, y + i * t.block_size);
}

}  // namespace tune::io

#pragma once
// GGUF v3 writer and the float32 -> F16 / BF16 / Q8_0 quantisers (torch-free). docs/gguf.md.
//
// The writer streams: metadata and tensor infos are declared first (their sizes and offsets follow
// from dims and type), then each tensor's bytes are written in declaration order, so an exporter
// holds one quantised tensor at a time rather than the whole model. Everything goes to a temporary
// sibling that finish() flushes and renames into place; a writer destroyed before finish() (an
// exception part-way) removes it, so a failed export never leaves a truncated .gguf behind.
//
//   io::GgufWriter w(path);
//   w.add("general.architecture", io::GgufValue::string("llama"));   // in the order wanted
//   w.add_tensor("token_embd.weight", {576, 49152}, io::GgmlType::Q8_0);
//   w.begin_data();                 // header, metadata, tensor infos, padding
//   w.write_tensor_data(bytes);     // per tensor, in add_tensor order (padded to the alignment)
//   w.finish();
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tune/io/gguf.h"

namespace tune::io {

// Quantises float32 values to blocks of `type` (F32, F16, BF16 or Q8_0): `in.size()` must be a
// multiple of the block size and `out` exactly the bytes of in.size() / block_size blocks.
// Bit-identical to the `gguf` Python package's quantize (and llama.cpp's reference quantisers):
//   F16: numpy's float32 -> float16 (round to nearest even; NaN keeps its top mantissa bits and
//        stays a NaN; overflow to +-inf);
//   BF16: ggml_compute_fp32_to_bf16 (NaN forced quiet, otherwise round to nearest even);
//   Q8_0: d = max|x| / 127, q = round-half-away(x * (1/d)), d stored as F16 (finite inputs; for
//        Inf/NaN blocks the package's result is numpy's undefined float->int8 cast).
// Throws tune::Error for other types or mismatched sizes.
void quantize(GgmlType type, std::span<const float> in, std::span<uint8_t> out);
uint16_t fp32_to_fp16(float v);
uint16_t fp32_to_bf16(float v);
// Bytes that `n` values of `type` take (n a multiple of the block size; throws otherwise).
uint64_t ggml_nbytes(GgmlType type, uint64_t n);

struct GgufTensorBytes;
class GgufWriter;
std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                           const std::vector<GgufTensorBytes>& tensors);

class GgufWriter {
 public:
  // Nothing is created until begin_data(). `path`'s directory must exist (or be creatable).
  explicit GgufWriter(std::filesystem::path path);
  GgufWriter(GgufWriter&&) noexcept;
  GgufWriter& operator=(GgufWriter&&) noexcept;
  ~GgufWriter();  // removes the temporary file when finish() was not reached

  // Metadata in the order given. A repeated key is an error, and so is "general.alignment" that is
  // not a UINT32 power of two; when present it sets the data alignment (default 32).
  void add(const std::string& key, GgufValue value);
  // A tensor of `dims` in GGUF order (dims[0] is the row length, a multiple of the type's block
  // size), 1 to 4 dims, a name of at most 63 bytes, unique.
  void add_tensor(const std::string& name, std::vector<uint64_t> dims, GgmlType type);

  // Writes header, metadata and tensor infos to the temporary file. No add/add_tensor afterwards.
  void begin_data();
  // The next tensor's bytes (exactly its nbytes), followed by padding to the alignment.
  void write_tensor_data(std::span<const uint8_t> bytes);
  // All tensors written: fsync, rename into place.
  void finish();

  uint64_t alignment() const;
  const std::vector<GgufTensorInfo>& tensors() const;  // offsets relative to the data section

 private:
  friend std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                    const std::vector<GgufTensorBytes>& tensors);
  struct State;
  std::unique_ptr<State> s_;
};

// A whole file in memory (tests and small files): the same bytes GgufWriter writes.
struct GgufTensorBytes {
  std::string name;
  std::vector<uint64_t> dims;  // GGUF order
  GgmlType type = GgmlType::F32;
  std::span<const uint8_t> bytes;
};
std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                           const std::vector<GgufTensorBytes>& tensors);
void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorBytes>& tensors);

}  // namespace tune::io

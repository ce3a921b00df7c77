// libFuzzer target for the GGUF reader and the GGUF -> HF mapping. Each input is parsed as file
// bytes; whatever the reader accepts must satisfy the format's invariants (tensor data inside the
// input, sizes matching dims x type, lookups consistent), must dequantise without touching memory
// outside its tensor, and must survive the Llama-family mapping (config, tensors, tokenizer files),
// which may only reject it with tune::Error. Any other exception, or an ASan/UBSan report, is a
// crash. Seeds: tests/fuzz/corpus/gguf (tests/fuzz/make_gguf_corpus.py).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tune/core/error.h"
#include "tune/io/gguf.h"
#include "tune/io/gguf_hf.h"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "gguf fuzz invariant violated: %s\n", what);
  std::abort();
}

#define FUZZ_ASSERT(cond)         \
  do {                            \
    if (!(cond)) violated(#cond); \
  } while (0)

constexpr uint64_t kMaxDequant = 1 << 20;  // elements; larger tensors are only bounds-checked

void check_accepted(const tune::io::GgufFile& file, std::span<const uint8_t> bytes) {
  FUZZ_ASSERT(file.version() == 2 || file.version() == 3);
  FUZZ_ASSERT(file.alignment() > 0 && (file.alignment() & (file.alignment() - 1)) == 0);
  FUZZ_ASSERT(file.metadata().size() == file.metadata_order().size());
  for (const auto& key : file.metadata_order()) {
    const tune::io::GgufValue* v = file.find(key);
    FUZZ_ASSERT(v != nullptr);
    (void)v->describe();
  }
  for (const auto& t : file.tensors()) {
    FUZZ_ASSERT(file.find_tensor(t.name) == &t);
    FUZZ_ASSERT(t.dims.size() <= 4);
    const auto& traits = tune::io::ggml_traits(t.type);
    FUZZ_ASSERT(t.numel() % traits.block_size == 0);
    FUZZ_ASSERT(t.nbytes == t.numel() / traits.block_size * traits.type_size);
    auto data = file.data(t);
    FUZZ_ASSERT(data.size() == t.nbytes);
    FUZZ_ASSERT(data.data() >= bytes.data() && data.data() + data.size() <= bytes.data() + bytes.size());
    FUZZ_ASSERT(t.offset % file.alignment() == 0);
    if (traits.dequantizable && t.numel() <= kMaxDequant) {
      std::vector<float> values = file.dequantize(t);
      FUZZ_ASSERT(values.size() == t.numel());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  try {
    auto file = tune::io::GgufFile::parse(bytes, "fuzz");
    check_accepted(file, bytes);
    try {
      (void)tune::io::gguf_hf_config(file).dump();
      for (const auto& t : tune::io::gguf_hf_tensors(file))
        if (file.find_tensor(t.gguf_name)->numel() <= kMaxDequant) (void)tune::io::gguf_hf_tensor_data(file, t);
    } catch (const tune::Error&) {
    }
    try {
      const auto tok = tune::io::gguf_hf_tokenizer(file);
      (void)tok.tokenizer.dump();
      (void)tok.tokenizer_config.dump();
      (void)tok.generation_config.dump();
    } catch (const tune::Error&) {
    }
  } catch (const tune::Error&) {
  }
  return 0;
}

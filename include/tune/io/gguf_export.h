#pragma once
// A Hugging Face directory of the Llama family as a GGUF file, as llama.cpp's convert_hf_to_gguf.py
// writes it (torch-free): metadata (general.*, <arch>.*, tokenizer.ggml.*, chat template), tensor
// names, llama's rotary Q/K row order, F32 norms and 1-D tensors, the rest in the chosen type.
// docs/gguf.md.
//
//   io::GgufExportOptions opt;
//   opt.type = io::GgufExportType::Q8_0;
//   io::GgufExportSummary s = io::export_gguf(hf_dir, "model.gguf", opt);
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tune/core/json.h"
#include "tune/io/gguf.h"

namespace tune::io {

// The file's main tensor type (convert_hf_to_gguf.py --outtype).
enum class GgufExportType { F32, F16, BF16, Q8_0 };
// "f32", "f16", "bf16", "q8_0" (case-insensitive); nullopt otherwise.
std::optional<GgufExportType> parse_gguf_export_type(std::string_view name);
std::string_view gguf_export_type_name(GgufExportType type);  // "q8_0"

struct GgufExportOptions {
  GgufExportType type = GgufExportType::F16;
  // general.name; empty: the HF directory's name.
  std::string name;
  // tokenizer.ggml.pre; empty: detected from tokenizer.json's pre-tokenizer (docs/gguf.md). Set it
  // for a vocabulary whose pre-tokenizer has the same steps as a known one under another name.
  std::string tokenizer_pre;
  // general.alignment (a power of two); written only when it is not the default 32.
  uint32_t alignment = 32;
};

struct GgufExportSummary {
  std::string architecture;   // general.architecture: llama, qwen2, qwen3
  std::string tokenizer_pre;  // tokenizer.ggml.pre written
  size_t tensors = 0;
  uint64_t parameters = 0;
  uint64_t file_bytes = 0;
  std::map<std::string, size_t> tensor_types;  // "F32" -> 61, "Q8_0" -> 211
};

// Reads hf_dir (config.json; model.safetensors or model.safetensors.index.json with its shards,
// F32/BF16/F16 tensors; tokenizer.json, tokenizer_config.json, chat_template.jinja when present)
// and writes `out` (to a temporary sibling, renamed into place). Architectures: LlamaForCausalLM
// and MistralForCausalLM -> llama (Q/K rows permuted as convert_hf_to_gguf.py does),
// Qwen2ForCausalLM -> qwen2, Qwen3ForCausalLM -> qwen3. Tokenizers: byte-level BPE tokenizer.json
// (tokenizer.ggml.model gpt2). Throws tune::Error naming the file and the key or tensor for
// anything else (rope scaling, a SentencePiece tokenizer.model, an unknown pre-tokenizer, a missing
// or misshapen tensor, an unsupported dtype).
GgufExportSummary export_gguf(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                              const GgufExportOptions& options = {});

// ---- pieces (also used by the tests)

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

// tokenizer.ggml.* and tokenizer.chat_template* from hf_dir's tokenizer files, in the order
// convert_hf_to_gguf.py writes them. `vocab_size` pads the token list with [PADn] UNUSED entries up
// to the embedding rows (0: the tokenizer's own size). `pre` overrides the detected pre-tokenizer.
GgufMetadata gguf_tokenizer_metadata(const std::filesystem::path& hf_dir, int64_t vocab_size = 0,
                                     const std::string& pre = "");

// The tokenizer.ggml.pre name for a tokenizer.json: its normalizer, pre-tokenizer steps and
// ignore_merges compared with what each supported name means in llama.cpp (the inverse of
// gguf_pre_tokenizer): smollm (digits one by one, then GPT-2's split), gpt2, llama-bpe (smaug-bpe
// without ignore_merges), qwen2. Throws, naming `origin` and the steps, for anything else.
std::string detect_gguf_pre_tokenizer(const Json& tokenizer_json, const std::string& origin);

// convert_hf_to_gguf.py's LlamaModel.permute on a [rows, cols] row-major matrix (or a bias,
// cols = 1): within each of `heads` heads, GGUF row 2i+k <- HF row k*(rows/heads/2)+i. The inverse
// of unpermute_rotary_rows.
void permute_rotary_rows(std::span<float> data, int64_t rows, int64_t cols, int64_t heads);

}  // namespace tune::io

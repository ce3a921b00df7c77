#pragma once
// A GGUF file of the Llama family as a Hugging Face model directory (torch-free parts): config.json
// from the metadata, tensor names and shapes, dequantised float32 weights in HF row order (llama.cpp's
// rotary Q/K row permutation undone), and tokenizer.json / tokenizer_config.json /
// generation_config.json from tokenizer.ggml.*. docs/gguf.md.
//
// An importer (tune import --gguf) does:
//   auto file = io::GgufFile::open(path);
//   io::write_gguf_hf_metadata(file, dir);                  // config + tokenizer files
//   for (const auto& t : io::gguf_hf_tensors(file)) {
//     std::vector<float> w = io::gguf_hf_tensor_data(file, t);  // shape t.shape, row-major
//     ... to a tensor of the wanted dtype, into model.safetensors under t.hf_name
//   }
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/io/gguf.h"

namespace tune::io {

// The model hyper-parameters of a supported GGUF architecture (general.architecture llama, qwen2 or
// qwen3; Mistral and SmolLM files say llama).
struct GgufLlamaConfig {
  std::string architecture;     // the GGUF name
  std::string hf_architecture;  // LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM
  std::string model_type;       // llama, qwen2, qwen3
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int64_t vocab_size = 0;               // embedding rows
  int64_t max_position_embeddings = 0;  // <arch>.context_length
  double rope_theta = 10000.0, rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;  // output.weight absent
  bool attention_bias = false;       // blk.0.attn_q.bias present
  bool permuted_qk = false;          // llama: Q/K rows are in llama.cpp's interleaved rotary order
};

// Reads and checks the hyper-parameters (all keys present, positive, consistent with the tensor
// shapes). Throws tune::Error naming the file and key for anything unsupported or missing, e.g. an
// architecture outside the Llama family or rope scaling.
GgufLlamaConfig gguf_llama_config(const GgufFile& file);

// config.json (transformers' field names; torch_dtype float32, rope_theta at top level).
Json gguf_hf_config(const GgufFile& file);

struct GgufHfTensor {
  std::string hf_name;                // model.layers.0.self_attn.q_proj.weight
  std::string gguf_name;              // blk.0.attn_q.weight
  std::vector<int64_t> shape;         // HF row-major shape ([out, in] for projections)
  int64_t unpermute_heads = 0;        // > 0: rows are undone from llama.cpp's rotary order over this many heads
};

// The file's tensors under HF names, in file order (lm_head.weight absent when embeddings are tied;
// rope_freqs and other tensors with no HF counterpart are an error). Throws on unknown names.
std::vector<GgufHfTensor> gguf_hf_tensors(const GgufFile& file);

// The tensor dequantised to float32, row-major in HF shape and row order.
std::vector<float> gguf_hf_tensor_data(const GgufFile& file, const GgufHfTensor& tensor);

// Undoes convert_hf_to_gguf.py's permute() on a [rows, cols] row-major matrix (or a bias with
// cols = 1): within each of `heads` heads of rows/heads rows, GGUF row 2i+k holds HF row
// k*(rows/heads/2)+i. Throws if rows is not a multiple of 2*heads.
void unpermute_rotary_rows(std::span<float> data, int64_t rows, int64_t cols, int64_t heads);

struct GgufHfTokenizer {
  Json tokenizer;               // tokenizer.json (null for a SentencePiece vocabulary)
  std::string tokenizer_model;  // tokenizer.model bytes (SentencePiece vocabulary only, else empty)
  Json tokenizer_config;        // tokenizer_config.json (chat_template, bos/eos/pad/unk, add_bos_token)
  Json generation_config;       // generation_config.json (bos, every EOS id, pad)
};

// The tokenizer files from tokenizer.ggml.*. Supported: model "gpt2" (byte-level BPE, written as
// tokenizer.json) with the pre-tokenizers named in docs/gguf.md (smollm and the StarCoder family:
// digits split one by one, then GPT-2's split; gpt2; llama-bpe; qwen2), and model "llama"
// (SentencePiece BPE: pieces, scores and types written as a tokenizer.model protobuf, the way
// llama.cpp tokenizes them: identity normalizer, add_space_prefix, byte fallback when the
// vocabulary has byte pieces). Anything else throws, naming the key and value.
GgufHfTokenizer gguf_hf_tokenizer(const GgufFile& file);

// The pre-tokenizer (tokenizer.json form) and settings for a tokenizer.ggml.pre value; throws for
// an unknown name.
struct GgufPreTokenizer {
  Json pre_tokenizer;
  Json normalizer;  // null unless the family normalises (qwen2: NFC)
  bool ignore_merges = false;
};
GgufPreTokenizer gguf_pre_tokenizer(std::string_view pre);

// Writes config.json, tokenizer.json (or tokenizer.model), tokenizer_config.json and
// generation_config.json into dir (created if missing; each file written atomically). Not the weights.
void write_gguf_hf_metadata(const GgufFile& file, const std::filesystem::path& dir);
// The same without config.json (a GGUF file holding only a vocabulary).
void write_gguf_hf_tokenizer(const GgufFile& file, const std::filesystem::path& dir);

}  // namespace tune::io

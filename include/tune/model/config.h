#pragma once
// Hyper-parameters of a Llama-family decoder (Llama 2/3/3.1/3.2, Qwen2/2.5, Qwen3, Mistral),
// read from and written to a Hugging Face config.json. Torch-free.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/json.h"

namespace tune::model {

enum class Arch { llama, qwen2, qwen3, mistral };

std::string_view arch_name(Arch arch);           // "llama" (the config.json model_type)
std::string_view arch_class_name(Arch arch);     // "LlamaForCausalLM"

// RoPE frequency scaling. "default" (none), "linear" (all frequencies / factor) or "llama3"
// (Llama 3.1/3.2 wavelength-dependent interpolation).
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q, k, v, o biases (Llama, Qwen3, Mistral)
  bool mlp_bias = false;        // gate, up, down biases (Llama)
  // Qwen2 always has q/k/v biases (no o bias) whatever attention_bias says; see qkv_bias().
  std::optional<int64_t> sliding_window;  // window W: query i sees key j iff i-W < j <= i
  bool use_sliding_window = false;        // Qwen switch (Mistral: window on when non-null)
  int64_t max_window_layers = 0;          // Qwen: window only for layers >= this
  std::vector<std::string> layer_types;   // v5 "full_attention" / "sliding_attention"; may be empty
  int64_t max_position_embeddings = 4096;
  double initializer_range = 0.02;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // eos_token_id: int or list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";  // "float32" / "bfloat16" / "float16"

  bool qkv_bias() const { return arch == Arch::qwen2 || attention_bias; }
  bool o_bias() const { return arch != Arch::qwen2 && attention_bias; }
  bool qk_norm() const { return arch == Arch::qwen3; }
  // The window of layer `layer`, or nullopt for full attention.
  std::optional<int64_t> layer_window(int64_t layer) const;
  int64_t num_parameters() const;

  // Parses config.json content; `origin` (the file name) appears in errors with the key.
  static ModelConfig from_json(const Json& json, const std::string& origin = "config.json");
  static ModelConfig load(const std::filesystem::path& model_dir);  // <dir>/config.json
  // The classic form (top-level rope_theta / rope_scaling, architectures set) that transformers
  // 4.x and 5.x both load.
  Json to_json() const;
  // Throws tune::Error on inconsistent values (heads not dividing, non-positive sizes).
  void validate(const std::string& origin) const;
};

// Named shapes for `tune init-model`: "tiny" (~1-3M params, llama style), "llama-100m" (the
// SFT benchmark model), "qwen2.5-0.5b",
// "llama-3.2-1b" (real shapes). `vocab` overrides the vocabulary size when > 0.
ModelConfig preset_config(std::string_view name, int64_t vocab = 0);
std::vector<std::string> preset_names();

}  // namespace tune::model

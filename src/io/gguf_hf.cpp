// GGUF (Llama family) -> Hugging Face: config.json, tensor names and shapes, the rotary row order.
#include <algorithm>
#include <map>
#include <regex>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/io/gguf_hf.h"

namespace tune::io {
namespace {

struct Architecture {
  std::string_view gguf, hf, model_type;
  bool permuted_qk;  // convert_hf_to_gguf.py permutes q/k rows (LlamaModel.permute)
};

// convert_hf_to_gguf.py permutes Q/K for LlamaModel (llama, mistral, SmolLM: general.architecture
// "llama"); Qwen2Model and Qwen3Model write HF's row order unchanged.
constexpr Architecture kArchitectures[] = {
    {"llama", "LlamaForCausalLM", "llama", true},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", false},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", false},
};

const Architecture& architecture_of(const GgufFile& file) {
  const auto arch = file.get_string("general.architecture");
  if (!arch) fail(file.origin(), ": GGUF metadata key \"general.architecture\" is missing");
  for (const auto& a : kArchitectures)
    if (a.gguf == *arch) return a;
  fail(file.origin(), ": GGUF architecture \"", *arch,
       "\" is not supported (general.architecture must be one of: llama, qwen2, qwen3)");
}

int64_t required_count(const GgufFile& file, const std::string& key) {
  const auto v = file.get_uint(key);
  if (!v) fail(file.origin(), ": GGUF metadata key \"", key, "\" is missing");
  if (*v == 0 || *v > (uint64_t{1} << 40)) fail(file.origin(), ": GGUF metadata key \"", key, "\" is ", *v, ", out of range");
  return static_cast<int64_t>(*v);
}

std::vector<int64_t> hf_shape(const GgufTensorInfo& t) {
  std::vector<int64_t> out;
  for (uint64_t d : t.shape()) out.push_back(static_cast<int64_t>(d));
  return out;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// GGUF block tensor suffix -> HF module path inside model.layers.N.
const std::map<std::string, std::string, std::less<>>& block_names() {
  static const std::map<std::string, std::string, std::less<>> names = {
      {"attn_norm", "input_layernorm"},       {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},         {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},    {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"},    {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  return names;
}

}  // namespace

GgufLlamaConfig gguf_llama_config(const GgufFile& file) {
  const Architecture& arch = architecture_of(file);
  const std::string a(arch.gguf);
  GgufLlamaConfig c;
  c.architecture = a;
  c.hf_architecture = arch.hf;
  c.model_type = arch.model_type;
  c.permuted_qk = arch.permuted_qk;
  c.num_hidden_layers = required_count(file, a + ".block_count");
  c.hidden_size = required_count(file, a + ".embedding_length");
  c.intermediate_size = required_count(file, a + ".feed_forward_length");
  c.num_attention_heads = required_count(file, a + ".attention.head_count");
  c.num_key_value_heads = file.find(a + ".attention.head_count_kv")
                              ? required_count(file, a + ".attention.head_count_kv")
                              : c.num_attention_heads;
  c.max_position_embeddings = required_count(file, a + ".context_length");
  c.head_dim = file.find(a + ".attention.key_length") ? required_count(file, a + ".attention.key_length")
                                                       : c.hidden_size / c.num_attention_heads;
  if (file.find(a + ".attention.value_length") && required_count(file, a + ".attention.value_length") != c.head_dim)
    fail(file.origin(), ": GGUF key \"", a, ".attention.value_length\" differs from the key length ", c.head_dim,
         " (not supported)");
  if (!file.find(a + ".attention.key_length") && c.hidden_size % c.num_attention_heads != 0)
    fail(file.origin(), ": embedding_length ", c.hidden_size, " is not a multiple of head_count ", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(file.origin(), ": GGUF key \"", a, ".attention.head_count\" (", c.num_attention_heads,
         ") is not a multiple of head_count_kv (", c.num_key_value_heads, ")");
  if (c.head_dim % 2 != 0) fail(file.origin(), ": head dimension ", c.head_dim, " is odd; RoPE needs it even");
  if (auto rot = file.get_uint(a + ".rope.dimension_count"); rot && static_cast<int64_t>(*rot) != c.head_dim)
    fail(file.origin(), ": GGUF key \"", a, ".rope.dimension_count\" is ", *rot, " but the head dimension is ",
         c.head_dim, " (partial rotary embeddings are not supported)");
  c.rope_theta = file.get_float(a + ".rope.freq_base").value_or(10000.0);
  const auto eps = file.get_float(a + ".attention.layer_norm_rms_epsilon");
  if (!eps) fail(file.origin(), ": GGUF metadata key \"", a, ".attention.layer_norm_rms_epsilon\" is missing");
  // Stored as FLOAT32: 1e-5 reads 9.999999747378752e-06, and is kept so (as transformers keeps it).
  c.rms_norm_eps = *eps;
  if (c.rope_theta <= 0 || !(c.rms_norm_eps > 0)) fail(file.origin(), ": rope.freq_base and layer_norm_rms_epsilon must be positive");
  if (auto type = file.get_string(a + ".rope.scaling.type"); type && *type != "none")
    fail(file.origin(), ": GGUF key \"", a, ".rope.scaling.type\" is \"", *type, "\"; rope scaling is not supported yet");
  if (file.find_tensor("rope_freqs.weight"))
    fail(file.origin(), ": tensor \"rope_freqs.weight\" (Llama 3.1-style rope scaling factors) is not supported yet");

  const GgufTensorInfo* embed = file.find_tensor("token_embd.weight");
  if (!embed) fail(file.origin(), ": tensor \"token_embd.weight\" is missing");
  const auto embed_shape = hf_shape(*embed);
  if (embed_shape.size() != 2 || embed_shape[1] != c.hidden_size)
    fail(file.origin(), ": tensor \"token_embd.weight\" has HF shape ", shape_text(embed_shape), ", expected [vocab, ",
         c.hidden_size, "]");
  c.vocab_size = embed_shape[0];
  if (auto v = file.get_uint(a + ".vocab_size"); v && static_cast<int64_t>(*v) != c.vocab_size)
    fail(file.origin(), ": GGUF key \"", a, ".vocab_size\" is ", *v, " but token_embd.weight has ", c.vocab_size, " rows");
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  c.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

Json gguf_hf_config(const GgufFile& file) {
  const GgufLlamaConfig c = gguf_llama_config(file);
  Json j;
  j["architectures"] = Json::array({c.hf_architecture});
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type == "llama") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = file.find_tensor("blk.0.ffn_gate.bias") != nullptr;
  }
  if (c.model_type == "qwen3") j["attention_bias"] = c.attention_bias;
  if (c.model_type != "llama") j["use_sliding_window"] = false;
  j["initializer_range"] = 0.02;
  j["torch_dtype"] = "float32";
  if (auto bos = file.get_uint("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *bos;
  if (auto eos = file.get_uint("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = *eos;
  if (auto pad = file.get_uint("tokenizer.ggml.padding_token_id")) j["pad_token_id"] = *pad;
  return j;
}

std::vector<GgufHfTensor> gguf_hf_tensors(const GgufFile& file) {
  const GgufLlamaConfig c = gguf_llama_config(file);
  static const std::regex block_re(R"(blk\.(\d+)\.([a-z_]+)\.(weight|bias))");
  const int64_t D = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int64_t q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  std::vector<GgufHfTensor> out;
  std::map<std::string, bool> seen;
  for (const GgufTensorInfo& t : file.tensors()) {
    GgufHfTensor h;
    h.gguf_name = t.name;
    h.shape = hf_shape(t);
    std::vector<int64_t> expected;  // the HF shape the config implies
    std::smatch m;
    if (t.name == "token_embd.weight") {
      h.hf_name = "model.embed_tokens.weight";
      expected = {c.vocab_size, D};
    } else if (t.name == "output_norm.weight") {
      h.hf_name = "model.norm.weight";
      expected = {D};
    } else if (t.name == "output.weight") {
      h.hf_name = "lm_head.weight";
      expected = {c.vocab_size, D};
    } else if (std::regex_match(t.name, m, block_re)) {
      const std::string layer = m[1].str(), part = m[2].str(), kind = m[3].str();
      const auto it = block_names().find(part);
      if (it == block_names().end() || layer.size() > 6 || std::stoll(layer) >= c.num_hidden_layers)
        fail(file.origin(), ": tensor \"", t.name, "\" has no Hugging Face counterpart in a ", c.architecture, " model of ",
             c.num_hidden_layers, " layers");
      h.hf_name = str("model.layers.", std::stoll(layer), ".", it->second, ".", kind);
      const bool bias = kind == "bias";
      if (part == "attn_q") expected = bias ? std::vector<int64_t>{q_rows} : std::vector<int64_t>{q_rows, D};
      else if (part == "attn_k" || part == "attn_v")
        expected = bias ? std::vector<int64_t>{kv_rows} : std::vector<int64_t>{kv_rows, D};
      else if (part == "attn_output") expected = bias ? std::vector<int64_t>{D} : std::vector<int64_t>{D, q_rows};
      else if (part == "ffn_gate" || part == "ffn_up") expected = bias ? std::vector<int64_t>{I} : std::vector<int64_t>{I, D};
      else if (part == "ffn_down") expected = bias ? std::vector<int64_t>{D} : std::vector<int64_t>{D, I};
      else if (part == "attn_q_norm" || part == "attn_k_norm") expected = {hd};
      else expected = {D};  // the two norms
      if (c.permuted_qk && part == "attn_q") h.unpermute_heads = c.num_attention_heads;
      if (c.permuted_qk && part == "attn_k") h.unpermute_heads = c.num_key_value_heads;
    } else {
      fail(file.origin(), ": tensor \"", t.name, "\" has no Hugging Face counterpart (supported: token_embd, output_norm, ",
           "output, blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,attn_q_norm,attn_k_norm,ffn_norm,ffn_gate,ffn_up,",
           "ffn_down})");
    }
    if (h.shape != expected)
      fail(file.origin(), ": tensor \"", t.name, "\" has HF shape ", shape_text(h.shape), ", but the config implies ",
           shape_text(expected));
    seen[h.hf_name] = true;
    out.push_back(std::move(h));
  }
  // Every layer complete: a missing projection would otherwise surface as a random init later.
  std::vector<std::string> required = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
                                       "mlp.down_proj"};
  if (c.model_type == "qwen3") {
    required.push_back("self_attn.q_norm");
    required.push_back("self_attn.k_norm");
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& r : required)
      if (!seen.count(str("model.layers.", l, ".", r, ".weight")))
        fail(file.origin(), ": the GGUF file lacks the tensor for model.layers.", l, ".", r, ".weight");
  if (!seen.count("model.norm.weight")) fail(file.origin(), ": tensor \"output_norm.weight\" is missing");
  return out;
}

void unpermute_rotary_rows(std::span<float> data, int64_t rows, int64_t cols, int64_t heads) {
  if (heads <= 0 || rows % (2 * heads) != 0)
    fail("unpermute_rotary_rows: ", rows, " rows do not split into ", heads, " heads of an even size");
  if (static_cast<int64_t>(data.size()) != rows * cols)
    fail("unpermute_rotary_rows: ", data.size(), " values for a ", rows, " x ", cols, " matrix");
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> head(static_cast<size_t>(hd * cols));
  for (int64_t h = 0; h < heads; ++h) {
    float* base = data.data() + h * hd * cols;
    std::copy(base, base + hd * cols, head.begin());
    for (int64_t i = 0; i < half; ++i)
      for (int64_t k = 0; k < 2; ++k)
        std::copy_n(head.data() + (2 * i + k) * cols, cols, base + (k * half + i) * cols);
  }
}

std::vector<float> gguf_hf_tensor_data(const GgufFile& file, const GgufHfTensor& tensor) {
  const GgufTensorInfo* info = file.find_tensor(tensor.gguf_name);
  if (!info) fail(file.origin(), ": no tensor \"", tensor.gguf_name, "\"");
  std::vector<float> data = file.dequantize(*info);
  if (tensor.unpermute_heads > 0) {
    const int64_t rows = tensor.shape.at(0);
    const int64_t cols = tensor.shape.size() > 1 ? tensor.shape[1] : 1;
    unpermute_rotary_rows(data, rows, cols, tensor.unpermute_heads);
  }
  return data;
}

void write_gguf_hf_tokenizer(const GgufFile& file, const std::filesystem::path& dir) {
  const GgufHfTokenizer tok = gguf_hf_tokenizer(file);
  fs::ensure_directory(dir);
  if (tok.tokenizer_model.empty()) write_json_file(dir / "tokenizer.json", tok.tokenizer);
  else fs::write_file_atomic(dir / "tokenizer.model", tok.tokenizer_model);
  write_json_file(dir / "tokenizer_config.json", tok.tokenizer_config);
  write_json_file(dir / "generation_config.json", tok.generation_config);
}

void write_gguf_hf_metadata(const GgufFile& file, const std::filesystem::path& dir) {
  const Json config = gguf_hf_config(file);
  (void)gguf_hf_tokenizer(file);  // fail before anything is written
  fs::ensure_directory(dir);
  write_json_file(dir / "config.json", config);
  write_gguf_hf_tokenizer(file, dir);
}

}  // namespace tune::io

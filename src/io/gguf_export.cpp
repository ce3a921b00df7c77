// Hugging Face (Llama family) -> GGUF, as convert_hf_to_gguf.py writes it: general.* and <arch>.*
// hyper-parameters, tokenizer metadata, tensors under llama.cpp's names in llama.cpp's types.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "io/safetensors_header.h"
#include "tune/core/error.h"
#include "tune/io/gguf_export.h"
#include "tune/io/gguf_writer.h"
#include "tune/io/safetensors.h"

namespace tune::io {
namespace {

// llama_ftype numbers (general.file_type) and the main ggml type of each --outtype.
struct ExportType {
  GgufExportType type;
  std::string_view name;
  GgmlType ggml;
  uint32_t file_type;
};
constexpr ExportType kExportTypes[] = {
    {GgufExportType::F32, "f32", GgmlType::F32, 0},
    {GgufExportType::F16, "f16", GgmlType::F16, 1},
    {GgufExportType::BF16, "bf16", GgmlType::BF16, 32},
    {GgufExportType::Q8_0, "q8_0", GgmlType::Q8_0, 7},
};
const ExportType& export_type(GgufExportType t) {
  for (const auto& e : kExportTypes)
    if (e.type == t) return e;
  fail("GGUF export: unknown export type ", static_cast<int>(t));
}

struct Model {
  std::string arch;  // llama, qwen2, qwen3
  bool permute_qk = false;
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0, context = 0;
  double rope_theta = 10000.0, rms_eps = 1e-6;
  bool head_dim_given = false, tied = false;
};

int64_t count(const Json& c, const std::string& key, const std::string& origin, std::optional<int64_t> fallback = {}) {
  const Json v = c.value(key, Json());
  if (v.is_null()) {
    if (fallback) return *fallback;
    fail(origin, ": key \"", key, "\" is missing");
  }
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 40))
    fail(origin, ": key \"", key, "\" is ", v.dump(), ", not a positive integer");
  return v.get<int64_t>();
}

double number(const Json& c, const std::string& key, const std::string& origin, double fallback) {
  const Json v = c.value(key, Json());
  if (v.is_null()) return fallback;
  if (!v.is_number() || !(v.get<double>() > 0)) fail(origin, ": key \"", key, "\" is ", v.dump(), ", not a positive number");
  return v.get<double>();
}

Model read_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  if (!std::filesystem::exists(path)) fail(path.string(), ": missing (GGUF export needs the model config)");
  const std::string origin = path.string();
  const Json c = read_json_file(path);
  const Json archs = c.value("architectures", Json::array());
  const std::string hf_arch = archs.is_array() && !archs.empty() && archs[0].is_string() ? archs[0].get<std::string>() : "";
  Model m;
  // convert_hf_to_gguf.py: LlamaModel (llama, mistral; Q/K permuted), Qwen2Model, Qwen3Model.
  if (hf_arch == "LlamaForCausalLM" || hf_arch == "MistralForCausalLM") {
    m.arch = "llama";
    m.permute_qk = true;
  } else if (hf_arch == "Qwen2ForCausalLM") {
    m.arch = "qwen2";
  } else if (hf_arch == "Qwen3ForCausalLM") {
    m.arch = "qwen3";
  } else {
    fail(origin, ": architecture \"", hf_arch,
         "\" is not supported by GGUF export (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
         "Qwen3ForCausalLM)");
  }
  m.hidden = count(c, "hidden_size", origin);
  m.intermediate = count(c, "intermediate_size", origin);
  m.layers = count(c, "num_hidden_layers", origin);
  m.heads = count(c, "num_attention_heads", origin);
  m.kv_heads = count(c, "num_key_value_heads", origin, m.heads);
  m.head_dim_given = !c.value("head_dim", Json()).is_null();
  if (!m.head_dim_given && m.hidden % m.heads != 0)
    fail(origin, ": hidden_size ", m.hidden, " is not a multiple of num_attention_heads ", m.heads, " and head_dim is not set");
  m.head_dim = count(c, "head_dim", origin, m.hidden / m.heads);
  if (m.heads % m.kv_heads != 0)
    fail(origin, ": num_attention_heads ", m.heads, " is not a multiple of num_key_value_heads ", m.kv_heads);
  if (m.head_dim % 2 != 0) fail(origin, ": head_dim ", m.head_dim, " is odd; RoPE needs it even");
  m.vocab = count(c, "vocab_size", origin);
  m.context = count(c, "max_position_embeddings", origin);
  m.rms_eps = number(c, "rms_norm_eps", origin, 1e-6);
  // transformers 5 keeps rope settings in rope_parameters, earlier versions at the top level.
  const Json rope = c.value("rope_parameters", Json());
  m.rope_theta = rope.is_object() ? number(rope, "rope_theta", origin, 10000.0) : number(c, "rope_theta", origin, 10000.0);
  const Json scaling = c.value("rope_scaling", Json());
  const std::string rope_type = rope.is_object() ? rope.value("rope_type", std::string("default")) : "default";
  if ((!scaling.is_null() && !(scaling.is_object() && scaling.value("rope_type", scaling.value("type", std::string())) == "default")) ||
      rope_type != "default")
    fail(origin, ": rope scaling (", scaling.is_null() ? rope.dump() : scaling.dump(), ") is not supported by GGUF export yet");
  if (const Json f = c.value("partial_rotary_factor", Json()); !f.is_null() && f != Json(1.0) && f != Json(1))
    fail(origin, ": partial_rotary_factor ", f.dump(), " is not supported");
  if (const std::string act = c.value("hidden_act", std::string("silu")); act != "silu")
    fail(origin, ": hidden_act \"", act, "\" is not supported (the Llama family uses silu)");
  m.tied = c.value("tie_word_embeddings", false);
  return m;
}

// The safetensors tensors of a directory: one file, or the shards an index names.
class Weights {
 public:
  explicit Weights(const std::filesystem::path& dir) {
    const auto index = dir / "model.safetensors.index.json";
    std::vector<std::string> shards;
    if (std::filesystem::exists(index)) {
      const Json j = read_json_file(index);
      const Json map = j.value("weight_map", Json());
      if (!map.is_object() || map.empty()) fail(index.string(), ": \"weight_map\" is missing or empty");
      std::set<std::string> seen;
      for (const auto& [name, file] : map.items()) {
        if (!file.is_string()) fail(index.string(), ": weight_map[\"", name, "\"] is not a file name");
        if (seen.insert(file.get<std::string>()).second) shards.push_back(file.get<std::string>());
      }
    } else if (std::filesystem::exists(dir / "model.safetensors")) {
      shards.push_back("model.safetensors");
    } else {
      fail(dir.string(), ": no model.safetensors or model.safetensors.index.json");
    }
    for (const auto& s : shards) {
      if (s.find('/') != std::string::npos || s == "..") fail(index.string(), ": shard name \"", s, "\" is not a file in the directory");
      files_.push_back(SafetensorsFile::open(dir / s));
    }
    for (size_t f = 0; f < files_.size(); ++f)
      for (const auto& t : files_[f].tensors())
        if (!where_.emplace(t.name, std::pair{f, &t}).second)
          fail(files_[f].origin(), ": tensor \"", t.name, "\" is also in another shard");
  }

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, _] : where_) out.push_back(n);
    return out;
  }
  std::vector<uint64_t> shape(const std::string& name) const { return where_.at(name).second->shape; }

  // As float32 (F32 copied; BF16 and F16 widened exactly).
  std::vector<float> load(const std::string& name) const {
    const auto& [f, info] = where_.at(name);
    const auto bytes = files_[f].data(*info);
    std::vector<float> out(info->numel());
    switch (info->dtype) {
      case DType::F32: if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size()); break;
      case DType::F16: dequantize(GgmlType::F16, bytes, out); break;
      case DType::BF16: dequantize(GgmlType::BF16, bytes, out); break;
      default:
        fail(files_[f].origin(), ": tensor \"", name, "\" is ", dtype_name(info->dtype),
             "; GGUF export reads F32, BF16 and F16 weights");
    }
    return out;
  }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> where_;
};

struct Planned {
  std::string hf, gguf;
  std::vector<int64_t> shape;  // HF row-major
  int64_t permute_heads = 0;
  GgmlType type = GgmlType::F32;
};

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Every tensor the model has, in llama.cpp's names, in a fixed order (embedding, layers, norm, head).
std::vector<Planned> plan_tensors(const Model& m, const Weights& w, GgmlType main_type, const std::string& origin) {
  const int64_t D = m.hidden, I = m.intermediate, hd = m.head_dim, q_rows = m.heads * hd, kv_rows = m.kv_heads * hd;
  std::vector<Planned> out;
  std::set<std::string> used;
  auto add = [&](const std::string& hf, const std::string& gguf, std::vector<int64_t> shape, bool required,
                 int64_t permute_heads = 0) {
    if (!w.has(hf)) {
      if (required) fail(origin, ": tensor \"", hf, "\" is missing");
      return;
    }
    std::vector<int64_t> actual;
    for (uint64_t d : w.shape(hf)) actual.push_back(static_cast<int64_t>(d));
    if (actual != shape)
      fail(origin, ": tensor \"", hf, "\" has shape ", shape_text(actual), ", but config.json implies ", shape_text(shape));
    Planned p{hf, gguf, shape, permute_heads, main_type};
    // convert_hf_to_gguf.py: 1-D tensors, norms and biases stay F32 (llama.cpp expects them so);
    // a row length Q8_0 blocks cannot split falls back to F16.
    if (shape.size() <= 1 || gguf.ends_with("_norm.weight") || !gguf.ends_with(".weight")) p.type = GgmlType::F32;
    else if (p.type == GgmlType::Q8_0 && shape.back() % 32 != 0) p.type = GgmlType::F16;
    used.insert(hf);
    out.push_back(std::move(p));
  };
  add("model.embed_tokens.weight", "token_embd.weight", {m.vocab, D}, true);
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string hf = str("model.layers.", l, "."), g = str("blk.", l, ".");
    add(hf + "input_layernorm.weight", g + "attn_norm.weight", {D}, true);
    const int64_t qp = m.permute_qk ? m.heads : 0, kp = m.permute_qk ? m.kv_heads : 0;
    add(hf + "self_attn.q_proj.weight", g + "attn_q.weight", {q_rows, D}, true, qp);
    add(hf + "self_attn.q_proj.bias", g + "attn_q.bias", {q_rows}, false, qp);
    add(hf + "self_attn.k_proj.weight", g + "attn_k.weight", {kv_rows, D}, true, kp);
    add(hf + "self_attn.k_proj.bias", g + "attn_k.bias", {kv_rows}, false, kp);
    add(hf + "self_attn.v_proj.weight", g + "attn_v.weight", {kv_rows, D}, true);
    add(hf + "self_attn.v_proj.bias", g + "attn_v.bias", {kv_rows}, false);
    add(hf + "self_attn.o_proj.weight", g + "attn_output.weight", {D, q_rows}, true);
    add(hf + "self_attn.o_proj.bias", g + "attn_output.bias", {D}, false);
    add(hf + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {hd}, m.arch == "qwen3");
    add(hf + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {hd}, m.arch == "qwen3");
    add(hf + "post_attention_layernorm.weight", g + "ffn_norm.weight", {D}, true);
    add(hf + "mlp.gate_proj.weight", g + "ffn_gate.weight", {I, D}, true);
    add(hf + "mlp.gate_proj.bias", g + "ffn_gate.bias", {I}, false);
    add(hf + "mlp.up_proj.weight", g + "ffn_up.weight", {I, D}, true);
    add(hf + "mlp.up_proj.bias", g + "ffn_up.bias", {I}, false);
    add(hf + "mlp.down_proj.weight", g + "ffn_down.weight", {D, I}, true);
    add(hf + "mlp.down_proj.bias", g + "ffn_down.bias", {D}, false);
  }
  add("model.norm.weight", "output_norm.weight", {D}, true);
  // Tied: llama.cpp reuses token_embd when output.weight is absent (a saved lm_head is a copy).
  if (!m.tied) add("lm_head.weight", "output.weight", {m.vocab, D}, true);
  else if (w.has("lm_head.weight")) used.insert("lm_head.weight");
  for (const auto& name : w.names())
    if (!used.count(name) && !name.ends_with("rotary_emb.inv_freq"))
      fail(origin, ": tensor \"", name, "\" has no GGUF counterpart in a ", m.arch, " model of ", m.layers, " layers");
  return out;
}

}  // namespace

std::optional<GgufExportType> parse_gguf_export_type(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& e : kExportTypes)
    if (e.name == lower) return e.type;
  return std::nullopt;
}

std::string_view gguf_export_type_name(GgufExportType type) { return export_type(type).name; }

void permute_rotary_rows(std::span<float> data, int64_t rows, int64_t cols, int64_t heads) {
  if (heads <= 0 || rows % (2 * heads) != 0)
    fail("permute_rotary_rows: ", rows, " rows do not split into ", heads, " heads of an even size");
  if (static_cast<int64_t>(data.size()) != rows * cols)
    fail("permute_rotary_rows: ", data.size(), " values for a ", rows, " x ", cols, " matrix");
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> head(static_cast<size_t>(hd * cols));
  for (int64_t h = 0; h < heads; ++h) {
    float* base = data.data() + h * hd * cols;
    std::copy(base, base + hd * cols, head.begin());
    for (int64_t i = 0; i < half; ++i)
      for (int64_t k = 0; k < 2; ++k)
        std::copy_n(head.data() + (k * half + i) * cols, cols, base + (2 * i + k) * cols);
  }
}

namespace {

GgufExportSummary export_checked(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                                 const GgufExportOptions& options) {
  const Model m = read_config(hf_dir);
  const std::string origin = hf_dir.string();
  const Weights weights(hf_dir);
  const ExportType& et = export_type(options.type);
  const std::vector<Planned> plan = plan_tensors(m, weights, et.ggml, origin);
  // The tokenizer before anything is written: an unknown pre-tokenizer fails the export up front.
  GgufMetadata tok = gguf_tokenizer_metadata(hf_dir, m.vocab, options.tokenizer_pre);

  GgufWriter w(out);
  const std::string& a = m.arch;
  auto u32 = [](int64_t v) { return GgufValue::unsigned_int(GgufValueType::UINT32, static_cast<uint64_t>(v)); };
  auto f32 = [](double v) { return GgufValue::floating(GgufValueType::FLOAT32, v); };
  // The order convert_hf_to_gguf.py writes (general.alignment right after the architecture, as
  // GGUFWriter puts it).
  w.add("general.architecture", GgufValue::string(a));
  if (options.alignment != 32) w.add("general.alignment", u32(options.alignment));
  w.add("general.type", GgufValue::string("model"));
  std::string name = options.name;
  if (name.empty()) name = std::filesystem::absolute(hf_dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::absolute(hf_dir).lexically_normal().parent_path().filename().string();
  w.add("general.name", GgufValue::string(name));
  w.add(a + ".block_count", u32(m.layers));
  w.add(a + ".context_length", u32(m.context));
  w.add(a + ".embedding_length", u32(m.hidden));
  w.add(a + ".feed_forward_length", u32(m.intermediate));
  w.add(a + ".attention.head_count", u32(m.heads));
  w.add(a + ".attention.head_count_kv", u32(m.kv_heads));
  w.add(a + ".rope.freq_base", f32(m.rope_theta));
  w.add(a + ".attention.layer_norm_rms_epsilon", f32(m.rms_eps));
  if (m.head_dim_given || m.head_dim * m.heads != m.hidden) {
    w.add(a + ".attention.key_length", u32(m.head_dim));
    w.add(a + ".attention.value_length", u32(m.head_dim));
  }
  w.add("general.file_type", u32(et.file_type));
  w.add(a + ".vocab_size", u32(m.vocab));
  w.add(a + ".rope.dimension_count", u32(m.head_dim));
  GgufExportSummary summary;
  summary.architecture = a;
  for (auto& [key, value] : tok) {
    if (key == "tokenizer.ggml.pre") summary.tokenizer_pre = *value.as_string();
    w.add(key, std::move(value));
  }
  w.add("general.quantization_version", u32(2));  // GGML_QUANT_VERSION

  for (const Planned& p : plan) {
    std::vector<uint64_t> dims(p.shape.rbegin(), p.shape.rend());  // GGUF order: row length first
    w.add_tensor(p.gguf, std::move(dims), p.type);
  }
  w.begin_data();
  std::vector<uint8_t> bytes;
  for (const Planned& p : plan) {
    std::vector<float> data = weights.load(p.hf);
    if (p.permute_heads > 0)
      permute_rotary_rows(data, p.shape[0], p.shape.size() > 1 ? p.shape[1] : 1, p.permute_heads);
    bytes.resize(ggml_nbytes(p.type, data.size()));
    quantize(p.type, data, bytes);
    w.write_tensor_data(bytes);
    summary.parameters += data.size();
    ++summary.tensor_types[std::string(ggml_type_name(p.type))];
  }
  w.finish();
  summary.tensors = plan.size();
  summary.file_bytes = std::filesystem::file_size(out);
  return summary;
}

}  // namespace

GgufExportSummary export_gguf(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                              const GgufExportOptions& options) {
  // A JSON value of an unexpected type (null where a flag belongs, a string id) surfaces from
  // nlohmann as its own exception: reported as a tune::Error naming the directory.
  try {
    return export_checked(hf_dir, out, options);
  } catch (const nlohmann::json::exception& e) {
    fail(hf_dir.string(), ": GGUF export: unexpected value in a JSON file: ", e.what());
  }
}

}  // namespace tune::io

#include "tune/model/config.h"

#include "tune/core/error.h"

namespace tune::model {
namespace {

struct Reader {
  const Json& json;
  const std::string& origin;

  bool has(const char* key) const { return json.contains(key) && !json.at(key).is_null(); }

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    fail(origin, ": key '", key, "': ", why);
  }

  int64_t integer(const Json& value, const std::string& key) const {
    if (value.is_number_integer()) return value.get<int64_t>();
    // Some exporters write integral floats ("4096.0").
    if (value.is_number_float() && value.get<double>() == static_cast<double>(static_cast<int64_t>(value.get<double>())))
      return static_cast<int64_t>(value.get<double>());
    bad(key, str("expected an integer, got ", value.dump()));
  }
  int64_t required_int(const char* key) const {
    if (!has(key)) bad(key, "missing");
    return integer(json.at(key), key);
  }
  int64_t int_or(const char* key, int64_t fallback) const {
    return has(key) ? integer(json.at(key), key) : fallback;
  }
  std::optional<int64_t> optional_int(const char* key) const {
    if (!has(key)) return std::nullopt;
    return integer(json.at(key), key);
  }
  double number(const Json& value, const std::string& key) const {
    if (!value.is_number()) bad(key, str("expected a number, got ", value.dump()));
    return value.get<double>();
  }
  double number_or(const char* key, double fallback) const {
    return has(key) ? number(json.at(key), key) : fallback;
  }
  bool bool_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!json.at(key).is_boolean()) bad(key, str("expected true/false, got ", json.at(key).dump()));
    return json.at(key).get<bool>();
  }
};

Arch parse_arch(const Reader& r) {
  if (!r.has("model_type")) r.bad("model_type", "missing");
  const Json& v = r.json.at("model_type");
  if (!v.is_string()) r.bad("model_type", "expected a string");
  auto name = v.get<std::string>();
  if (name == "llama") return Arch::llama;
  if (name == "qwen2") return Arch::qwen2;
  if (name == "qwen3") return Arch::qwen3;
  if (name == "mistral") return Arch::mistral;
  r.bad("model_type", str("unsupported model type '", name, "' (supported: llama, qwen2, qwen3, mistral)"));
}

// Reads {"rope_type"|"type": ..., "factor": ...} found under `key`.
RopeScaling parse_rope_scaling(const Reader& r, const Json& obj, const std::string& key) {
  RopeScaling s;
  if (!obj.is_object()) r.bad(key, "expected an object or null");
  std::string type = "default";
  if (obj.contains("rope_type") && obj.at("rope_type").is_string()) type = obj.at("rope_type").get<std::string>();
  else if (obj.contains("type") && obj.at("type").is_string()) type = obj.at("type").get<std::string>();
  auto num = [&](const char* k, double fallback) {
    return obj.contains(k) && !obj.at(k).is_null() ? r.number(obj.at(k), key + "." + k) : fallback;
  };
  s.type = type;
  if (type == "default") return s;
  if (type == "linear") {
    s.factor = num("factor", 1.0);
    return s;
  }
  if (type == "llama3") {
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      if (!obj.contains(k)) r.bad(key + "." + k, "missing (required by rope_type llama3)");
    s.factor = num("factor", 1.0);
    s.low_freq_factor = num("low_freq_factor", 1.0);
    s.high_freq_factor = num("high_freq_factor", 4.0);
    s.original_max_position_embeddings = r.integer(obj.at("original_max_position_embeddings"),
                                                   key + ".original_max_position_embeddings");
    if (s.high_freq_factor <= s.low_freq_factor) r.bad(key, "high_freq_factor must exceed low_freq_factor");
    return s;
  }
  r.bad(key + ".rope_type", str("unsupported RoPE type '", type, "' (supported: default, linear, llama3)"));
}

}  // namespace

std::string_view arch_name(Arch arch) {
  switch (arch) {
    case Arch::llama: return "llama";
    case Arch::qwen2: return "qwen2";
    case Arch::qwen3: return "qwen3";
    case Arch::mistral: return "mistral";
  }
  return "?";
}

std::string_view arch_class_name(Arch arch) {
  switch (arch) {
    case Arch::llama: return "LlamaForCausalLM";
    case Arch::qwen2: return "Qwen2ForCausalLM";
    case Arch::qwen3: return "Qwen3ForCausalLM";
    case Arch::mistral: return "MistralForCausalLM";
  }
  return "?";
}

std::optional<int64_t> ModelConfig::layer_window(int64_t layer) const {
  if (!sliding_window) return std::nullopt;
  if (!layer_types.empty()) {
    if (layer_types.at(static_cast<size_t>(layer)) == "sliding_attention") return sliding_window;
    return std::nullopt;
  }
  if (arch == Arch::mistral) return sliding_window;
  if ((arch == Arch::qwen2 || arch == Arch::qwen3) && use_sliding_window && layer >= max_window_layers)
    return sliding_window;
  return std::nullopt;
}

int64_t ModelConfig::num_parameters() const {
  const int64_t D = hidden_size, hd = head_dim, H = num_attention_heads, KV = num_key_value_heads;
  int64_t per_layer = 2 * D                        // two norms
                      + D * H * hd + 2 * D * KV * hd + H * hd * D  // q, k, v, o
                      + 3 * D * intermediate_size;  // gate, up, down
  if (qkv_bias()) per_layer += H * hd + 2 * KV * hd;
  if (o_bias()) per_layer += D;
  if (mlp_bias) per_layer += 2 * intermediate_size + D;
  if (qk_norm()) per_layer += 2 * hd;
  int64_t total = vocab_size * D + num_hidden_layers * per_layer + D;
  if (!tie_word_embeddings) total += vocab_size * D;
  return total;
}

void ModelConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) fail(origin, ": key '", key, "': must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  if (num_attention_heads % num_key_value_heads != 0)
    fail(origin, ": key 'num_key_value_heads': ", num_key_value_heads, " does not divide num_attention_heads ",
         num_attention_heads);
  if (head_dim % 2 != 0) fail(origin, ": key 'head_dim': RoPE needs an even head_dim, got ", head_dim);
  if (sliding_window && *sliding_window <= 0)
    fail(origin, ": key 'sliding_window': must be positive, got ", *sliding_window);
  if (!layer_types.empty() && static_cast<int64_t>(layer_types.size()) != num_hidden_layers)
    fail(origin, ": key 'layer_types': has ", layer_types.size(), " entries for ", num_hidden_layers, " layers");
  if (rope_theta <= 0) fail(origin, ": key 'rope_theta': must be positive");
}

ModelConfig ModelConfig::from_json(const Json& json, const std::string& origin) {
  if (!json.is_object()) fail(origin, ": expected a JSON object");
  Reader r{json, origin};
  ModelConfig c;
  c.arch = parse_arch(r);
  c.vocab_size = r.required_int("vocab_size");
  c.hidden_size = r.required_int("hidden_size");
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_hidden_layers = r.required_int("num_hidden_layers");
  c.num_attention_heads = r.required_int("num_attention_heads");
  c.num_key_value_heads = r.int_or("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads <= 0) r.bad("num_attention_heads", "must be positive");
  c.head_dim = r.int_or("head_dim", c.hidden_size / c.num_attention_heads);
  c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.int_or("max_position_embeddings", 4096);
  c.initializer_range = r.number_or("initializer_range", 0.02);
  c.tie_word_embeddings = r.bool_or("tie_word_embeddings", false);
  c.attention_bias = r.bool_or("attention_bias", false);
  c.mlp_bias = r.bool_or("mlp_bias", false);

  if (r.has("hidden_act")) {
    auto act = json.at("hidden_act");
    if (!act.is_string() || (act.get<std::string>() != "silu" && act.get<std::string>() != "swish"))
      r.bad("hidden_act", str("unsupported activation ", act.dump(), " (only silu)"));
  }

  // RoPE: transformers v5 nests everything under rope_parameters; v4 has top-level keys.
  if (r.has("rope_parameters")) {
    const Json& rp = json.at("rope_parameters");
    if (!rp.is_object()) r.bad("rope_parameters", "expected an object");
    if (rp.contains("rope_theta")) c.rope_theta = r.number(rp.at("rope_theta"), "rope_parameters.rope_theta");
    else c.rope_theta = r.number_or("rope_theta", 10000.0);
    c.rope_scaling = parse_rope_scaling(r, rp, "rope_parameters");
  } else {
    c.rope_theta = r.number_or("rope_theta", 10000.0);
    if (r.has("rope_scaling")) c.rope_scaling = parse_rope_scaling(r, json.at("rope_scaling"), "rope_scaling");
  }

  c.sliding_window = r.optional_int("sliding_window");
  c.use_sliding_window = r.bool_or("use_sliding_window", false);
  c.max_window_layers = r.int_or("max_window_layers", 0);
  // Qwen: a window that is not switched on does not exist (transformers sets it to None).
  if ((c.arch == Arch::qwen2 || c.arch == Arch::qwen3) && !c.use_sliding_window) c.sliding_window.reset();
  if (r.has("layer_types") && c.arch != Arch::mistral && c.arch != Arch::llama) {
    const Json& lt = json.at("layer_types");
    if (!lt.is_array()) r.bad("layer_types", "expected a list");
    for (const auto& t : lt) {
      if (!t.is_string() || (t != "full_attention" && t != "sliding_attention"))
        r.bad("layer_types", str("unsupported entry ", t.dump()));
      c.layer_types.push_back(t.get<std::string>());
    }
  }

  c.bos_token_id = r.optional_int("bos_token_id");
  c.pad_token_id = r.optional_int("pad_token_id");
  if (r.has("eos_token_id")) {
    const Json& e = json.at("eos_token_id");
    if (e.is_array()) {
      for (const auto& id : e) c.eos_token_ids.push_back(r.integer(id, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(r.integer(e, "eos_token_id"));
    }
  }
  const char* dtype_key = r.has("dtype") ? "dtype" : "torch_dtype";
  if (r.has(dtype_key)) {
    if (!json.at(dtype_key).is_string()) r.bad(dtype_key, "expected a string");
    c.torch_dtype = json.at(dtype_key).get<std::string>();
  }
  c.validate(origin);
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& model_dir) {
  auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path)) fail(path.string(), ": not found (expected a Hugging Face model directory)");
  return from_json(read_json_file(path), path.string());
}

Json ModelConfig::to_json() const {
  Json j = Json::object();
  j["architectures"] = Json::array({std::string(arch_class_name(arch))});
  j["model_type"] = std::string(arch_name(arch));
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    Json s = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == "llama3") {
      s["low_freq_factor"] = rope_scaling.low_freq_factor;
      s["high_freq_factor"] = rope_scaling.high_freq_factor;
      s["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = s;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (arch != Arch::qwen2) j["attention_bias"] = attention_bias;
  if (arch == Arch::llama) j["mlp_bias"] = mlp_bias;
  j["attention_dropout"] = 0.0;
  if (arch == Arch::qwen2 || arch == Arch::qwen3) {
    j["use_sliding_window"] = use_sliding_window;
    j["sliding_window"] = sliding_window ? Json(*sliding_window) : Json(nullptr);
    j["max_window_layers"] = max_window_layers;
    if (!layer_types.empty()) j["layer_types"] = layer_types;
  } else if (arch == Arch::mistral) {
    j["sliding_window"] = sliding_window ? Json(*sliding_window) : Json(nullptr);
  }
  j["bos_token_id"] = bos_token_id ? Json(*bos_token_id) : Json(nullptr);
  if (eos_token_ids.empty()) j["eos_token_id"] = nullptr;
  else if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else j["eos_token_id"] = eos_token_ids;
  j["pad_token_id"] = pad_token_id ? Json(*pad_token_id) : Json(nullptr);
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  return j;
}

std::vector<std::string> preset_names() { return {"tiny", "llama-100m", "qwen2.5-0.5b", "llama-3.2-1b"}; }

ModelConfig preset_config(std::string_view name, int64_t vocab) {
  ModelConfig c;
  if (name == "tiny") {
    c.arch = Arch::llama;
    c.vocab_size = 512;
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 2048;
    c.torch_dtype = "float32";
  } else if (name == "llama-100m") {
    // 100.1M parameters (tied embeddings), Llama-2 vocabulary size: the SFT benchmark model.
    c.arch = Arch::llama;
    c.vocab_size = 32000;
    c.hidden_size = 768;
    c.intermediate_size = 2048;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 4096;
    c.torch_dtype = "float32";
  } else if (name == "qwen2.5-0.5b") {
    c.arch = Arch::qwen2;
    c.vocab_size = 151936;
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 32768;
    c.max_window_layers = 21;
    c.bos_token_id = 151643;
    c.eos_token_ids = {151643};
    c.torch_dtype = "bfloat16";
  } else if (name == "llama-3.2-1b") {
    c.arch = Arch::llama;
    c.vocab_size = 128256;
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.rope_scaling = RopeScaling{"llama3", 32.0, 1.0, 4.0, 8192};
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 131072;
    c.bos_token_id = 128000;
    c.eos_token_ids = {128001};
    c.torch_dtype = "bfloat16";
  } else {
    usage_fail("unknown model preset '", name, "' (known: ", join(preset_names(), ", "), ")");
  }
  if (vocab > 0) c.vocab_size = vocab;
  c.validate(str("preset ", name));
  return c;
}

}  // namespace tune::model

// adapter_config.json: what we write, and what we accept from PEFT.
#include <cmath>
#include <optional>
#include <regex>
#include <set>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/lora/peft.h"

namespace tune::lora {
namespace {

// PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", name) — a full match of the name.
std::optional<std::string> pattern_for(const std::vector<std::string>& keys, const std::string& module_name) {
  for (const auto& key : keys) {
    try {
      if (std::regex_match(module_name, std::regex("(.*\\.)?(" + key + ")"))) return key;
    } catch (const std::regex_error&) {
      fail("adapter_config.json: pattern '", key, "' is not a valid regular expression");
    }
  }
  return std::nullopt;
}

template <class M>
std::vector<std::string> keys_of(const M& map) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : map) keys.push_back(k);
  return keys;
}

bool truthy(const Json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_array() || j.is_object() || j.is_string()) return !j.empty();
  if (j.is_number()) return j.get<double>() != 0.0;
  return true;
}

double number(const Json& j, const std::string& origin, const char* key) {
  if (!j.is_number()) fail(origin, ": ", key, " must be a number, got ", j.dump());
  return j.get<double>();
}

Json number_json(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return Json(static_cast<int64_t>(v));
  return Json(v);
}

}  // namespace

int64_t PeftAdapterConfig::rank_for(const std::string& module_name) const {
  // The pattern maps are ordered by key here while PEFT keeps the file's order; they only differ
  // when two patterns match the same module, which PEFT itself never writes.
  auto key = pattern_for(keys_of(rank_pattern), module_name);
  return key ? rank_pattern.at(*key) : r;
}

double PeftAdapterConfig::alpha_for(const std::string& module_name) const {
  auto key = pattern_for(keys_of(alpha_pattern), module_name);
  return key ? alpha_pattern.at(*key) : alpha;
}

double PeftAdapterConfig::scale_for(const std::string& module_name) const {
  return LoraConfig::scale_for(rank_for(module_name), alpha_for(module_name), use_rslora);
}

PeftAdapterConfig PeftAdapterConfig::from_json(const Json& json, const std::string& origin) {
  if (!json.is_object()) fail(origin, ": expected a JSON object");
  auto get = [&](const char* key) -> const Json& {
    static const Json null_json;
    auto it = json.find(key);
    return it == json.end() ? null_json : *it;
  };
  const Json& type = get("peft_type");
  if (!type.is_string() || type.get<std::string>() != "LORA")
    fail(origin, ": peft_type is ", type.dump(), ", only LORA adapters are supported");

  // Settings that change the adapter's function in ways tune does not implement.
  static const char* unsupported[] = {"use_dora", "modules_to_save", "fan_in_fan_out", "lora_bias",
                                      "layer_replication", "target_parameters", "use_qalora",
                                      "trainable_token_indices", "alora_invocation_tokens", "use_bdlora"};
  std::vector<std::string> problems;
  for (const char* key : unsupported)
    if (truthy(get(key))) problems.push_back(str(key, "=", get(key).dump()));
  const Json& bias = get("bias");
  if (!bias.is_null() && bias != "none") problems.push_back(str("bias=", bias.dump()));
  if (!problems.empty())
    fail(origin, ": unsupported LoRA settings: ", join(problems, ", "),
         " (tune reads plain LoRA adapters: no DoRA, no bias, no extra saved modules)");

  const Json& task = get("task_type");
  if (!task.is_null() && task != "CAUSAL_LM")
    log::warn(origin, ": task_type is ", task.dump(), ", loading the LoRA weights into a causal LM anyway");

  PeftAdapterConfig c;
  if (!get("r").is_null()) {
    double r = number(get("r"), origin, "r");
    if (r <= 0 || r != std::floor(r)) fail(origin, ": r must be a positive integer, got ", get("r").dump());
    c.r = static_cast<int64_t>(r);
  }
  if (!get("lora_alpha").is_null()) c.alpha = number(get("lora_alpha"), origin, "lora_alpha");
  if (!get("lora_dropout").is_null()) c.dropout = number(get("lora_dropout"), origin, "lora_dropout");
  if (!get("use_rslora").is_null()) {
    if (!get("use_rslora").is_boolean()) fail(origin, ": use_rslora must be true or false");
    c.use_rslora = get("use_rslora").get<bool>();
  }
  const Json& targets = get("target_modules");
  if (targets.is_string()) {
    c.target_modules.push_back(targets.get<std::string>());
  } else if (targets.is_array()) {
    for (const auto& t : targets) {
      if (!t.is_string()) fail(origin, ": target_modules must list strings, got ", t.dump());
      c.target_modules.push_back(t.get<std::string>());
    }
  }
  if (get("base_model_name_or_path").is_string()) c.base_model_name_or_path = get("base_model_name_or_path").get<std::string>();

  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    const Json& pattern = get(key);
    if (pattern.is_null()) continue;
    if (!pattern.is_object()) fail(origin, ": ", key, " must be an object, got ", pattern.dump());
    for (const auto& [name, value] : pattern.items()) {
      double v = number(value, origin, key);
      if (std::string(key) == "rank_pattern") {
        if (v <= 0 || v != std::floor(v)) fail(origin, ": rank_pattern[", name, "] must be a positive integer");
        c.rank_pattern[name] = static_cast<int64_t>(v);
      } else {
        c.alpha_pattern[name] = v;
      }
    }
  }
  return c;
}

Json adapter_config_json(const LoraConfig& config, const LoraSet& set, const std::string& base_model_name_or_path) {
  // Short names (plus layers_to_transform) select the same modules in PEFT as here; targets given
  // as dotted names are written as the exact module names, which PEFT matches one by one.
  bool short_names = config.all_linear();
  if (!short_names) {
    short_names = true;
    for (const auto& t : config.targets)
      if (t.find('.') != std::string::npos) short_names = false;
  }
  Json targets = Json::array();
  Json layers = nullptr;
  if (short_names) {
    for (const auto& name : set.target_leaf_names()) targets.push_back(name);
    if (auto l = config.layers()) layers = *l;
  } else {
    std::set<std::string> names;
    for (const auto& m : set.modules()) names.insert(m.name);
    for (const auto& name : names) targets.push_back(name);
  }

  Json j = Json::object();
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = base_model_name_or_path;
  j["revision"] = nullptr;
  j["inference_mode"] = true;
  j["r"] = config.r;
  j["lora_alpha"] = number_json(config.alpha);
  j["lora_dropout"] = config.dropout;
  j["target_modules"] = targets;
  j["exclude_modules"] = nullptr;
  j["layers_to_transform"] = layers;
  j["layers_pattern"] = nullptr;
  j["rank_pattern"] = Json::object();
  j["alpha_pattern"] = Json::object();
  j["use_rslora"] = config.use_rslora;
  j["use_dora"] = false;
  j["bias"] = "none";
  j["lora_bias"] = false;
  j["fan_in_fan_out"] = false;
  j["modules_to_save"] = nullptr;
  // Only the starting point of training; the saved weights are what counts.
  j["init_lora_weights"] = config.init == "gaussian" ? Json("gaussian") : Json(true);
  return j;
}

}  // namespace tune::lora

#include "tune/lora/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "tune/core/error.h"
#include "tune/core/str.h"

namespace tune::lora {
namespace {

constexpr std::string_view kAllLinear = "all-linear";

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string_view last_component(std::string_view name) {
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

}  // namespace

const std::vector<std::string>& projection_leaf_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

double LoraConfig::scale_for(int64_t r, double alpha, bool rslora) {
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool LoraConfig::all_linear() const { return targets.size() == 1 && targets[0] == kAllLinear; }

std::optional<std::vector<int64_t>> LoraConfig::layers() const {
  if (layers_to_transform.is_null()) return std::nullopt;
  if (layers_to_transform.is_number_integer()) return std::vector<int64_t>{layers_to_transform.get<int64_t>()};
  std::vector<int64_t> out;
  for (const auto& item : layers_to_transform) out.push_back(item.get<int64_t>());
  return out;
}

config::Check<std::vector<std::string>> LoraConfig::check_targets() {
  return [](const std::vector<std::string>& targets) -> std::string {
    if (targets.empty()) return "must name at least one module (or all-linear)";
    for (const auto& t : targets) {
      if (t.empty()) return "has an empty entry";
      if (t == kAllLinear && targets.size() > 1) return "all-linear cannot be combined with other entries";
      if (t.front() == '.' || t.back() == '.') return str("entry '", t, "' must not start or end with '.'");
    }
    return "";
  };
}

config::Check<Json> LoraConfig::check_layers() {
  return [](const Json& layers) -> std::string {
    if (layers.is_null()) return "";
    auto ok = [](const Json& j) { return j.is_number_integer() && j.get<int64_t>() >= 0; };
    if (ok(layers)) return "";
    if (!layers.is_array() || layers.empty()) return "must be null, a layer index or a non-empty list of layer indices";
    for (const auto& item : layers)
      if (!ok(item)) return str("must list non-negative integers, got ", item.dump());
    return "";
  };
}

void LoraConfig::validate() const {
  auto require = [](const char* key, const std::string& problem) {
    if (!problem.empty()) usage_fail("config error: lora.", key, " ", problem);
  };
  require("r", config::greater_than<int64_t>(0)(r));
  require("alpha", config::greater_than<double>(0.0)(alpha));
  require("dropout", config::in_range(0.0, 0.999)(dropout));
  require("targets", check_targets()(targets));
  require("init", config::one_of({"default", "gaussian"})(init));
  require("layers_to_transform", check_layers()(layers_to_transform));
}

bool matches_targets(const std::vector<std::string>& targets, std::string_view module_name) {
  for (const auto& t : targets) {
    if (t == kAllLinear) {
      const auto& leaves = projection_leaf_names();
      if (std::find(leaves.begin(), leaves.end(), last_component(module_name)) != leaves.end()) return true;
      continue;
    }
    if (module_name == t) return true;
    if (module_name.size() > t.size() && module_name.ends_with(t) &&
        module_name[module_name.size() - t.size() - 1] == '.')
      return true;
  }
  return false;
}

std::optional<int64_t> layer_index(std::string_view module_name) {
  // PEFT: re.match(r".*?\.[^.]*\.(\d+)\.", name), the first number that has two components before
  // it and one after.
  std::vector<std::string> parts = split(module_name, '.');
  for (size_t i = 2; i + 1 < parts.size(); ++i)
    if (all_digits(parts[i])) return std::stoll(parts[i]);
  return std::nullopt;
}

}  // namespace tune::lora

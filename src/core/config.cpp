#include "tune/core/config.h"

#include <cmath>
#include <limits>

namespace tune::config {

Check<std::string> one_of(std::vector<std::string> choices) {
  return [choices](const std::string& v) {
    for (const auto& c : choices)
      if (c == v) return std::string();
    return str("must be one of: ", join(choices, ", "), " (got '", v, "')");
  };
}

std::string Sources::of(const std::string& path) const {
  // The most specific recorded prefix wins: an override of "optim" covers "optim.lr".
  std::string p = path;
  while (true) {
    auto it = by_path.find(p);
    if (it != by_path.end()) return it->second;
    auto dot = p.find_last_of(".[");
    if (dot == std::string::npos) return fallback;
    p = p.substr(0, dot);
  }
}

void set_path(Json& tree, const std::string& dotted_path, Json value) {
  // Components are "name" or "name[i]" (list items: data.datasets[0].path=...).
  Json* node = &tree;
  auto parts = split(dotted_path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    std::vector<size_t> indices;
    while (!part.empty() && part.back() == ']') {
      auto open = part.rfind('[');
      if (open == std::string::npos) usage_fail("invalid key '", dotted_path, "': unbalanced ']'");
      std::string digits = part.substr(open + 1, part.size() - open - 2);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
        usage_fail("invalid key '", dotted_path, "': list index must be a number");
      indices.insert(indices.begin(), std::stoul(digits));
      part = part.substr(0, open);
    }
    if (part.empty()) usage_fail("invalid key '", dotted_path, "': empty component");
    if (!node->is_object()) {
      if (!node->is_null()) usage_fail("invalid key '", dotted_path, "': '", join({parts.begin(), parts.begin() + i}, "."), "' is not a mapping");
      *node = Json::object();
    }
    node = &(*node)[part];
    for (size_t idx : indices) {
      if (node->is_null()) *node = Json::array();
      if (!node->is_array()) usage_fail("invalid key '", dotted_path, "': '", part, "' is not a list");
      if (idx > node->size()) usage_fail("invalid key '", dotted_path, "': index ", idx, " is past the end of '", part, "' (", node->size(), " items)");
      if (idx == node->size()) node->push_back(Json::object());
      node = &(*node)[idx];
    }
    if (i + 1 == parts.size()) *node = std::move(value);
  }
}

Reader::Reader(const Json& tree, const Sources& sources, std::string prefix)
    : tree_(tree), sources_(sources), prefix_(std::move(prefix)) {}

const Json* Reader::take(const char* key) {
  known_.emplace_back(key);
  if (!tree_.is_object()) return nullptr;
  auto it = tree_.find(key);
  if (it == tree_.end()) return nullptr;
  consumed_.insert(key);
  if (it->is_null()) return nullptr;  // "key:" with no value keeps the default
  return &*it;
}

std::string Reader::where(const std::string& path, bool from_tree) const {
  return from_tree ? str(" (from ", sources_.of(path), ")") : std::string(" (default value)");
}

void Reader::finish() const {
  if (!tree_.is_object()) return;
  for (auto it = tree_.begin(); it != tree_.end(); ++it) {
    if (consumed_.count(it.key())) continue;
    std::string path = prefix_.empty() ? it.key() : prefix_ + "." + it.key();
    std::string hint = closest_match(it.key(), known_);
    usage_fail("config error: unknown key '", path, "'", where(path, true),
               hint.empty() ? "" : str("; did you mean '", prefix_.empty() ? hint : prefix_ + "." + hint, "'?"));
  }
}

namespace {
std::string shown(const Json& node) {
  std::string s = node.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}
}  // namespace

void Reader::read_value(const std::string& path, const Json& node, bool& out) {
  if (!node.is_boolean()) usage_fail("config error: ", path, " expects true or false, got ", shown(node), where(path, true));
  out = node.get<bool>();
}

void Reader::read_value(const std::string& path, const Json& node, int64_t& out) {
  if (node.is_number_integer()) {
    out = node.get<int64_t>();
    return;
  }
  // 1e3 and 2.0 are accepted when they are whole numbers (YAML writes large counts that way).
  if (node.is_number_float()) {
    double d = node.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      out = static_cast<int64_t>(d);
      return;
    }
  }
  usage_fail("config error: ", path, " expects an integer, got ", shown(node), where(path, true));
}

void Reader::read_value(const std::string& path, const Json& node, int& out) {
  int64_t v = 0;
  read_value(path, node, v);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    usage_fail("config error: ", path, " is out of range: ", v, where(path, true));
  out = static_cast<int>(v);
}

void Reader::read_value(const std::string& path, const Json& node, double& out) {
  if (!node.is_number()) usage_fail("config error: ", path, " expects a number, got ", shown(node), where(path, true));
  out = node.get<double>();
  if (!std::isfinite(out)) usage_fail("config error: ", path, " must be finite", where(path, true));
}

void Reader::read_value(const std::string& path, const Json& node, std::string& out) {
  // Scalars written without quotes (a number-like name) are accepted as their text.
  if (node.is_string()) out = node.get<std::string>();
  else if (node.is_number() || node.is_boolean()) out = node.dump();
  else usage_fail("config error: ", path, " expects a string, got ", shown(node), where(path, true));
}

void Reader::read_value(const std::string& path, const Json& node, std::vector<std::string>& out) {
  out.clear();
  if (node.is_string()) {  // a single string stands for a one-element list
    out.push_back(node.get<std::string>());
    return;
  }
  if (!node.is_array()) usage_fail("config error: ", path, " expects a list of strings, got ", shown(node), where(path, true));
  for (const auto& item : node) {
    if (!item.is_string()) usage_fail("config error: ", path, " expects a list of strings, got ", shown(node), where(path, true));
    out.push_back(item.get<std::string>());
  }
}

void Reader::read_value(const std::string& path, const Json& node, std::vector<double>& out) {
  out.clear();
  if (!node.is_array()) usage_fail("config error: ", path, " expects a list of numbers, got ", shown(node), where(path, true));
  for (const auto& item : node) {
    if (!item.is_number()) usage_fail("config error: ", path, " expects a list of numbers, got ", shown(node), where(path, true));
    out.push_back(item.get<double>());
  }
}

namespace {
void flatten(const Json& node, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& rows) {
  if (node.is_object() && !node.empty()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), rows);
    return;
  }
  if (node.is_array() && !node.empty() && node[0].is_object()) {
    for (size_t i = 0; i < node.size(); ++i) flatten(node[i], str(prefix, "[", i, "]"), rows);
    return;
  }
  rows.emplace_back(prefix, node.is_string() ? node.get<std::string>() : node.dump());
}
}  // namespace

std::string format_table(const Json& resolved) {
  std::vector<std::pair<std::string, std::string>> rows;
  flatten(resolved, "", rows);
  size_t width = 0;
  for (auto& r : rows) width = std::max(width, r.first.size());
  std::string out;
  for (auto& r : rows) out += "  " + r.first + std::string(width - r.first.size(), ' ') + " = " + r.second + "\n";
  return out;
}

}  // namespace tune::config

#include "tune/cli/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <regex>

#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune::cli {
namespace {

Json scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: always a string
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  static const std::regex int_re(R"([-+]?[0-9]+)");
  static const std::regex float_re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, int_re)) {
    errno = 0;
    long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == 0) return v;
  }
  if (std::regex_match(text, float_re)) return std::strtod(text.c_str(), nullptr);
  if (text == ".inf" || text == "+.inf") return std::numeric_limits<double>::infinity();
  if (text == "-.inf") return -std::numeric_limits<double>::infinity();
  return text;
}

Json node_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      for (const auto& item : node) arr.push_back(node_to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.Scalar();
        if (obj.contains(key))
          usage_fail("duplicate key '", key, "' at line ", kv.first.Mark().line + 1);
        obj[key] = node_to_json(kv.second);
      }
      return obj;
    }
  }
  return nullptr;
}

}  // namespace

Json yaml_to_json(const std::string& text, const std::string& origin) {
  try {
    return node_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    usage_fail(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg);
  } catch (const UsageError& e) {
    usage_fail(origin, ": ", e.what());
  }
}

Json parse_yaml_file(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) usage_fail("config file not found: ", path.string());
  Json tree = yaml_to_json(fs::read_file(path), path.string());
  if (tree.is_null()) return Json::object();
  if (!tree.is_object()) usage_fail(path.string(), ": the top level must be a mapping of keys");
  return tree;
}

std::pair<std::string, Json> parse_override(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    usage_fail("expected key=value, got '", arg, "' (nested keys as a.b=1)");
  std::string key(trim(arg.substr(0, eq)));
  std::string value = arg.substr(eq + 1);
  Json parsed = value.empty() ? Json("") : yaml_to_json(value, "override '" + arg + "'");
  return {key, parsed};
}

ConfigTree load_config_tree(const std::optional<std::filesystem::path>& file,
                            const std::vector<std::string>& overrides,
                            const std::vector<std::pair<std::string, Json>>& flags) {
  ConfigTree out;
  if (file) {
    out.tree = parse_yaml_file(*file);
    out.sources.fallback = file->string();
  }
  for (const auto& arg : overrides) {
    auto [key, value] = parse_override(arg);
    config::set_path(out.tree, key, value);
    out.sources.by_path[key] = "command line '" + arg + "'";
  }
  for (const auto& [key, value] : flags) {
    config::set_path(out.tree, key, value);
    out.sources.by_path[key] = "command-line flag";
  }
  return out;
}

}  // namespace tune::cli

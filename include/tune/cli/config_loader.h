#pragma once
// The one place where YAML meets configuration: a YAML file and `key=value` overrides become one
// JSON tree plus a record of where each value came from. Precedence (lowest first):
//   struct defaults < --config FILE < key=value arguments < dedicated flags (--output-dir ...).
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tune/core/config.h"
#include "tune/core/json.h"

namespace tune::cli {

struct ConfigTree {
  Json tree = Json::object();
  config::Sources sources;
};

// YAML text -> JSON. Scalars follow YAML 1.2's core schema (true/false, null/~, ints, floats);
// quoted scalars stay strings. Errors name `origin` with line and column.
Json yaml_to_json(const std::string& text, const std::string& origin);
Json parse_yaml_file(const std::filesystem::path& path);

// Parses "a.b=value" (value as a YAML scalar or flow collection: 1e-4, true, [q_proj, v_proj]).
std::pair<std::string, Json> parse_override(const std::string& arg);

ConfigTree load_config_tree(const std::optional<std::filesystem::path>& file,
                            const std::vector<std::string>& overrides,
                            const std::vector<std::pair<std::string, Json>>& flags);

// Binds the tree onto a typed config struct (errors name key and file).
template <class S>
S resolve(const ConfigTree& tree) {
  return config::bind<S>(tree.tree, tree.sources);
}

}  // namespace tune::cli

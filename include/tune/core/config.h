#pragma once
// Typed configuration. Each module declares its config struct's fields once, in a visit function:
//
//   struct ScheduleConfig {
//     std::string kind = "cosine";
//     int64_t warmup_steps = 0;
//     template <class V> void visit(V& v) {
//       v("kind", kind, "constant | linear | cosine", config::one_of({"constant", "linear", "cosine"}));
//       v("warmup_steps", warmup_steps, "linear warmup steps", config::at_least<int64_t>(0));
//     }
//   };
//
// config::Reader binds a JSON tree (from YAML + key=value overrides, see cli/) onto the struct,
// checking types and ranges and naming the key and the file in every error; unknown keys are
// errors with a "did you mean" hint. config::Writer turns a struct back into JSON (the resolved
// configuration that is printed and saved in the run directory). Torch-free: no module needs to
// know about YAML.
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "tune/core/error.h"
#include "tune/core/json.h"

namespace tune::config {

// A check returns "" when the value is fine, else what is wrong ("must be > 0").
template <class T>
using Check = std::function<std::string(const T&)>;

template <class T>
Check<T> at_least(T low) {
  return [low](const T& v) { return v >= low ? std::string() : str("must be >= ", low); };
}
template <class T>
Check<T> greater_than(T low) {
  return [low](const T& v) { return v > low ? std::string() : str("must be > ", low); };
}
template <class T>
Check<T> in_range(T low, T high) {
  return [low, high](const T& v) {
    return (v >= low && v <= high) ? std::string() : str("must be in [", low, ", ", high, "]");
  };
}
Check<std::string> one_of(std::vector<std::string> choices);

// Where each value of a tree came from ("configs/sft/tiny.yaml", "command line"), by dotted path.
// Paths not listed come from `fallback` (usually the config file, or "defaults").
struct Sources {
  std::map<std::string, std::string> by_path;
  std::string fallback = "defaults";
  std::string of(const std::string& path) const;
};

// Sets `value` at a dotted path ("optim.lr") in `tree`, creating objects on the way.
void set_path(Json& tree, const std::string& dotted_path, Json value);

class Reader {
 public:
  Reader(const Json& tree, const Sources& sources, std::string prefix = "");

  template <class T>
  void operator()(const char* key, T& field, const char* help = "", std::type_identity_t<Check<T>> check = {}) {
    const Json* node = take(key);
    std::string path = full(key);
    if (node) read_value(path, *node, field);
    if (check) {
      std::string problem = check(field);
      if (!problem.empty()) usage_fail("config error: ", path, " ", problem, where(path, node != nullptr));
    }
  }

  template <class S>
  void section(const char* key, S& sub) {
    const Json* node = take(key);
    std::string path = full(key);
    if (node && !node->is_object()) usage_fail("config error: ", path, " must be a mapping", where(path, true));
    static const Json empty = Json::object();
    Reader inner(node ? *node : empty, sources_, path);
    sub.visit(inner);
    inner.finish();
  }

  template <class S>
  void list(const char* key, std::vector<S>& items) {
    const Json* node = take(key);
    if (!node) return;
    std::string path = full(key);
    if (!node->is_array()) usage_fail("config error: ", path, " must be a list", where(path, true));
    items.clear();
    for (size_t i = 0; i < node->size(); ++i) {
      std::string item_path = str(path, "[", i, "]");
      if (!(*node)[i].is_object()) usage_fail("config error: ", item_path, " must be a mapping", where(item_path, true));
      S item;
      Reader inner((*node)[i], sources_, item_path);
      item.visit(inner);
      inner.finish();
      items.push_back(std::move(item));
    }
  }

  // Throws for keys present in the tree that no field consumed.
  void finish() const;

 private:
  const Json* take(const char* key);
  std::string full(const char* key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  std::string where(const std::string& path, bool from_tree) const;

  void read_value(const std::string& path, const Json& node, bool& out);
  void read_value(const std::string& path, const Json& node, int64_t& out);
  void read_value(const std::string& path, const Json& node, int& out);
  void read_value(const std::string& path, const Json& node, double& out);
  void read_value(const std::string& path, const Json& node, std::string& out);
  void read_value(const std::string& path, const Json& node, std::vector<std::string>& out);
  void read_value(const std::string& path, const Json& node, std::vector<double>& out);
  void read_value(const std::string& path, const Json& node, Json& out) { out = node; }

  const Json& tree_;
  const Sources& sources_;
  std::string prefix_;
  std::set<std::string> consumed_;
  std::vector<std::string> known_;
};

// Turns a struct into JSON (field order kept), and collects the help text of each key.
class Writer {
 public:
  template <class T>
  void operator()(const char* key, T& field, const char* help = "", std::type_identity_t<Check<T>> = {}) {
    out_[key] = Json(field);
    if (help && *help) help_[full(key)] = help;
  }
  template <class S>
  void section(const char* key, S& sub) {
    Writer inner;
    inner.prefix_ = full(key);
    sub.visit(inner);
    out_[key] = inner.out_;
    help_.insert(inner.help_.begin(), inner.help_.end());
  }
  template <class S>
  void list(const char* key, std::vector<S>& items) {
    Json arr = Json::array();
    for (auto& item : items) {
      Writer inner;
      inner.prefix_ = full(key) + "[]";
      item.visit(inner);
      arr.push_back(inner.out_);
      help_.insert(inner.help_.begin(), inner.help_.end());
    }
    out_[key] = arr;
  }
  const Json& json() const { return out_; }
  const std::map<std::string, std::string>& help() const { return help_; }

 private:
  std::string full(const char* key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  Json out_ = Json::object();
  std::map<std::string, std::string> help_;
  std::string prefix_;
};

template <class S>
Json to_json(const S& cfg) {
  Writer w;
  const_cast<S&>(cfg).visit(w);  // visit does not modify in Writer mode
  return w.json();
}

// Binds `tree` onto a default-constructed S and returns it (throws UsageError on any problem).
template <class S>
S bind(const Json& tree, const Sources& sources) {
  S cfg;
  Reader reader(tree, sources);
  cfg.visit(reader);
  reader.finish();
  return cfg;
}

// "key = value" lines of a resolved configuration, nested keys dotted, for the start-up table.
std::string format_table(const Json& resolved);

}  // namespace tune::config

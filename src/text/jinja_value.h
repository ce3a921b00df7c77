#pragma once
// Runtime values of the Jinja interpreter. They follow Python semantics where templates can see
// the difference (int vs float, tuple vs list printing, str() / repr() forms, equality).
// Lists and dicts are shared by reference like Python objects; the only mutation templates can do
// is assigning a namespace attribute.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tune/core/json.h"

namespace tune::text::jinja {

struct Value;
struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // prints as (a, b)
  // A Python generator (what map/select/unique/reverse return in jinja2): always truthy, has no
  // len(), cannot be indexed, and the first pass over it consumes it.
  bool lazy = false;
};

struct DictData {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, string keys only
  bool is_namespace = false;
  bool is_loop = false;
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(std::string key, Value value);
};

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Func };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // String: the text; Undefined: why it is undefined ("'x' is undefined")
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<Function> fn;

  static Value undefined(std::string why) { Value v; v.s = std::move(why); return v; }
  static Value none() { Value v; v.kind = Kind::None; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.kind = Kind::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.kind = Kind::String; v.s = std::move(x); return v; }
  static Value new_list(std::vector<Value> items = {}, bool tuple = false);
  static Value new_generator(std::vector<Value> items) {
    Value v = new_list(std::move(items));
    v.list->lazy = true;
    return v;
  }
  static Value new_dict();
  static Value function(Function f);
  static Value from_json(const Json& j);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool truthy() const;
  double as_double() const;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at position `pos` or named `name`; Undefined when absent.
  Value get(size_t pos, std::string_view name) const;
  const Value* keyword_arg(std::string_view name) const;
};

// Python's type name as jinja2 error messages show it ("str", "dict", "int").
std::string type_name(const Value& v);
// str(v) as {{ v }} prints it (Undefined prints as "").
std::string to_str(const Value& v);
// repr(v): strings quoted as Python quotes them.
std::string to_repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, exponent form outside [1e-4, 1e16).
std::string float_repr(double x);
// json.dumps(v, ensure_ascii=False, indent=..., separators=..., sort_keys=...) as transformers' tojson.
std::string to_json_text(const Value& v, int indent, std::string_view item_sep, std::string_view key_sep,
                         bool sort_keys, bool ensure_ascii);
bool equals(const Value& a, const Value& b);
// <0, 0, >0 for values Python can order (numbers, strings, lists); throws a message otherwise.
int compare(const Value& a, const Value& b, std::string_view op);

// Code points of a UTF-8 string (Python strings index and count code points).
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
bool is_py_space(char32_t c);

}  // namespace tune::text::jinja

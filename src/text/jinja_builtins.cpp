// Filters, tests, attribute access and str/dict methods, with the semantics jinja2 gives them
// (which are mostly Python's).
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "text/jinja_ast.h"
#include "tune/core/error.h"

namespace tune::text::jinja {
namespace {

using U32 = std::u32string;

[[noreturn]] void fail(const std::string& msg) { throw EvalError(msg); }

int64_t as_int(const Value& v, const char* what) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b;
  fail(str(what, " must be an integer, not '", type_name(v), "'"));
}

U32 map_case(const U32& s, bool upper) {
  U32 out = s;
  for (char32_t& c : out)
    c = static_cast<char32_t>(upper ? utf8proc_toupper(static_cast<utf8proc_int32_t>(c))
                                    : utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
  return out;
}
bool is_cased_letter(char32_t c) {
  return utf8proc_toupper(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c) ||
         utf8proc_tolower(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c);
}

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  U32 text = utf8_decode(s);
  U32 set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) {
    if (!chars.is_string()) fail("strip arg must be None or str");
    set = utf8_decode(chars.s);
  }
  auto strip_it = [&](char32_t c) { return ws ? is_py_space(c) : set.find(c) != U32::npos; };
  size_t b = 0, e = text.size();
  if (left)
    while (b < e && strip_it(text[b])) ++b;
  if (right)
    while (e > b && strip_it(text[e - 1])) --e;
  return utf8_encode(text.substr(b, e - b));
}

std::vector<Value> py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<Value> out;
  if (sep.is_none() || sep.is_undefined()) {
    U32 text = utf8_decode(s);
    size_t k = 0;
    while (true) {
      while (k < text.size() && is_py_space(text[k])) ++k;
      if (k >= text.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        U32 rest = text.substr(k);
        while (!rest.empty() && is_py_space(rest.back())) rest.pop_back();
        out.push_back(Value::string(utf8_encode(rest)));
        break;
      }
      size_t start = k;
      while (k < text.size() && !is_py_space(text[k])) ++k;
      out.push_back(Value::string(utf8_encode(text.substr(start, k - start))));
    }
    return out;
  }
  if (!sep.is_string()) fail(str("must be str or None, not ", type_name(sep)));
  if (sep.s.empty()) fail("empty separator");
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep.s, start);
    if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::string(s.substr(start)));
      return out;
    }
    out.push_back(Value::string(s.substr(start, at - start)));
    start = at + sep.s.size();
  }
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    U32 text = utf8_decode(s);
    int64_t done = 0;
    for (size_t k = 0; k <= text.size(); ++k) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (k < text.size()) out += utf8_encode(text.substr(k, 1));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out += s.substr(start, at - start) + repl;
    start = at + old.size();
    ++done;
  }
  return out + s.substr(start);
}

std::string py_capitalize(const std::string& s) {
  U32 t = utf8_decode(s);
  if (t.empty()) return s;
  U32 rest = map_case(t.substr(1), false);
  return utf8_encode(map_case(t.substr(0, 1), true) + rest);
}

// str.title(): a cased letter after an uncased character starts a word.
std::string py_title(const std::string& s) {
  U32 t = utf8_decode(s);
  bool prev_cased = false;
  for (char32_t& c : t) {
    bool cased = is_cased_letter(c);
    c = map_case(U32(1, c), !prev_cased)[0];
    prev_cased = cased;
  }
  return utf8_encode(t);
}

bool starts_or_ends(const std::string& s, const Value& what, bool start) {
  auto test = [&](const Value& p) {
    if (!p.is_string()) fail("startswith/endswith argument must be str or a tuple of str");
    if (p.s.size() > s.size()) return false;
    return start ? s.compare(0, p.s.size(), p.s) == 0 : s.compare(s.size() - p.s.size(), p.s.size(), p.s) == 0;
  };
  if (what.is_list()) {
    for (const Value& p : what.list->items)
      if (test(p)) return true;
    return false;
  }
  return test(what);
}

// str.format with {} / {0} / {name} fields (no format specs).
std::string py_format(const std::string& fmt, CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') { out += '{'; ++k; continue; }
    if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') { out += '}'; ++k; continue; }
    if (c != '{') { out += c; continue; }
    size_t close = fmt.find('}', k);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!") != std::string::npos) fail("unsupported construct: format spec in str.format");
    Value v;
    if (field.empty()) v = a.get(auto_index++, "");
    else if (std::isdigit(static_cast<unsigned char>(field[0]))) v = a.get(std::stoul(field), "");
    else if (const Value* kw = a.keyword_arg(field)) v = *kw;
    else fail(str("KeyError: '", field, "'"));
    if (v.is_undefined()) fail("Replacement index out of range for positional args tuple");
    out += to_str(v);
    k = close;
  }
  return out;
}

Value bound(Function f) { return Value::function(std::move(f)); }

Value list_of_strings(const std::vector<std::string>& items) {
  std::vector<Value> out;
  for (const auto& s : items) out.push_back(Value::string(s));
  return Value::new_list(std::move(out));
}

Value string_method(const Value& obj, const std::string& name) {
  const std::string s = obj.s;
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound([s, name](CallArgs& a) {
      return Value::string(py_strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "split" || name == "rsplit")
    return bound([s, name](CallArgs& a) {
      Value sep = a.get(0, "sep"), maxv = a.get(1, "maxsplit");
      int64_t maxsplit = maxv.is_undefined() ? -1 : as_int(maxv, "maxsplit");
      if (name == "rsplit" && maxsplit >= 0) fail("unsupported construct: rsplit with maxsplit");
      return Value::new_list(py_split(s, sep, maxsplit));
    });
  if (name == "startswith" || name == "endswith")
    return bound([s, name](CallArgs& a) { return Value::boolean(starts_or_ends(s, a.get(0, "prefix"), name == "startswith")); });
  if (name == "replace")
    return bound([s](CallArgs& a) {
      Value o = a.get(0, "old"), n = a.get(1, "new"), c = a.get(2, "count");
      if (!o.is_string() || !n.is_string()) fail("replace() arguments must be str");
      return Value::string(py_replace(s, o.s, n.s, c.is_undefined() ? -1 : as_int(c, "count")));
    });
  if (name == "upper" || name == "lower")
    return bound([s, name](CallArgs&) { return Value::string(utf8_encode(map_case(utf8_decode(s), name == "upper"))); });
  if (name == "capitalize") return bound([s](CallArgs&) { return Value::string(py_capitalize(s)); });
  if (name == "title") return bound([s](CallArgs&) { return Value::string(py_title(s)); });
  if (name == "format") return bound([s](CallArgs& a) { return Value::string(py_format(s, a)); });
  if (name == "join")
    return bound([s](CallArgs& a) {
      std::string out;
      bool first = true;
      for (const Value& v : iterate(a.get(0, "iterable"))) {
        if (!v.is_string()) fail(str("sequence item: expected str instance, ", type_name(v), " found"));
        if (!first) out += s;
        first = false;
        out += v.s;
      }
      return Value::string(out);
    });
  if (name == "find" || name == "rfind" || name == "count")
    return bound([s, name](CallArgs& a) {
      Value sub = a.get(0, "sub");
      if (!sub.is_string()) fail("must be str");
      if (name == "count") {
        if (sub.s.empty()) return Value::integer(static_cast<int64_t>(utf8_decode(s).size()) + 1);
        int64_t n = 0;
        for (size_t at = s.find(sub.s); at != std::string::npos; at = s.find(sub.s, at + sub.s.size())) ++n;
        return Value::integer(n);
      }
      size_t at = name == "find" ? s.find(sub.s) : s.rfind(sub.s);
      if (at == std::string::npos) return Value::integer(-1);
      return Value::integer(static_cast<int64_t>(utf8_decode(s.substr(0, at)).size()));
    });
  if (name == "splitlines")
    return bound([s](CallArgs&) {
      std::vector<std::string> lines;
      size_t start = 0;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '\n' || s[k] == '\r') {
          lines.push_back(s.substr(start, k - start));
          if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
          start = k + 1;
        }
      }
      if (start < s.size()) lines.push_back(s.substr(start));
      return list_of_strings(lines);
    });
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum" || name == "isupper" ||
      name == "islower")
    return bound([s, name](CallArgs&) {
      U32 t = utf8_decode(s);
      if (t.empty()) return Value::boolean(false);
      bool any_cased = false;
      for (char32_t c : t) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        if (name == "isdigit" && !digit) return Value::boolean(false);
        if (name == "isspace" && !is_py_space(c)) return Value::boolean(false);
        if (name == "isalpha" && !alpha) return Value::boolean(false);
        if (name == "isalnum" && !alpha && !digit) return Value::boolean(false);
        if (name == "isupper" && cat == UTF8PROC_CATEGORY_LL) return Value::boolean(false);
        if (name == "islower" && cat == UTF8PROC_CATEGORY_LU) return Value::boolean(false);
        any_cased = any_cased || is_cased_letter(c);
      }
      return Value::boolean(name == "isupper" || name == "islower" ? any_cased : true);
    });
  return Value::undefined(str("'str object' has no attribute '", name, "'"));
}

Value items_of(const Value& d) {
  std::vector<Value> out;
  for (const auto& [k, v] : d.dict->items) out.push_back(Value::new_list({Value::string(k), v}, true));
  return Value::new_list(std::move(out));
}

Value dict_method(const Value& obj, const std::string& name) {
  auto d = obj;
  if (name == "get")
    return bound([d](CallArgs& a) {
      Value key = a.get(0, "key");
      Value dflt = a.positional.size() > 1 ? a.positional[1] : Value::none();
      if (!key.is_string()) return dflt;
      const Value* v = d.dict->find(key.s);
      return v ? *v : dflt;
    });
  if (name == "items") return bound([d](CallArgs&) { return items_of(d); });
  if (name == "keys")
    return bound([d](CallArgs&) {
      std::vector<Value> out;
      for (const auto& kv : d.dict->items) out.push_back(Value::string(kv.first));
      return Value::new_list(std::move(out));
    });
  if (name == "values")
    return bound([d](CallArgs&) {
      std::vector<Value> out;
      for (const auto& kv : d.dict->items) out.push_back(kv.second);
      return Value::new_list(std::move(out));
    });
  return Value();
}

size_t py_len(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return utf8_decode(v.s).size();
    case Value::Kind::List:
      if (v.list->lazy) fail("object of type 'generator' has no len()");
      return v.list->items.size();
    case Value::Kind::Dict: return v.dict->items.size();
    default: fail(str("object of type '", type_name(v), "' has no len()"));
  }
}

// Python's slice.indices().
void adjust_slice(int64_t len, const Value& start, const Value& stop, const Value& step, int64_t& b, int64_t& e,
                  int64_t& st) {
  st = step.is_none() ? 1 : as_int(step, "slice step");
  if (st == 0) fail("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t x = as_int(v, "slice index");
    if (x < 0) {
      x += len;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= len) {
      x = st < 0 ? len - 1 : len;
    }
    return x;
  };
  b = clamp(start, st < 0 ? len - 1 : 0);
  e = clamp(stop, st < 0 ? -1 : len);
}

bool call_test(const std::string& name, const Value& v, std::vector<Value> extra) {
  CallArgs a;
  a.positional = std::move(extra);
  return apply_test(name, v, a);
}

Value call_filter(const std::string& name, const Value& v, std::vector<Value> extra) {
  if (!is_known_filter(name)) fail(str("unsupported filter '", name, "'"));
  CallArgs a;
  a.positional = std::move(extra);
  return apply_filter(name, v, a);
}

// Attribute paths as jinja2's make_attrgetter: "a.b" or "0".
Value attr_path(const Value& v, const Value& attribute) {
  if (attribute.kind == Value::Kind::Int) return get_item(v, attribute);
  std::string path = to_str(attribute);
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = get_item(cur, numeric ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value select_like(const std::string& filter, const Value& seq, CallArgs& a) {
  bool by_attr = filter == "selectattr" || filter == "rejectattr";
  bool keep_if = filter == "select" || filter == "selectattr";
  size_t pos = 0;
  Value attribute = by_attr ? a.get(pos++, "attribute") : Value();
  Value test = a.positional.size() > pos ? a.positional[pos++] : Value();
  std::vector<Value> extra(a.positional.begin() + std::min(pos, a.positional.size()), a.positional.end());
  std::vector<Value> out;
  if (!seq.truthy()) return Value::new_generator({});  // jinja2 skips falsy input (None) without iterating
  for (const Value& item : iterate(seq)) {
    Value subject = by_attr ? attr_path(item, attribute) : item;
    bool ok = test.is_undefined() ? subject.truthy() : call_test(to_str(test), subject, extra);
    if (ok == keep_if) out.push_back(item);
  }
  return Value::new_generator(std::move(out));
}

std::string indent_text(const std::string& s, const Value& width, bool first, bool blank) {
  std::string pad = width.is_string() ? width.s : std::string(static_cast<size_t>(width.is_undefined() ? 4 : as_int(width, "width")), ' ');
  std::string out;
  size_t start = 0;
  bool is_first = true;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    bool do_pad = is_first ? first : (blank || !py_strip(line, Value::none(), true, true).empty());
    if (do_pad && !(is_first && line.empty() && nl == std::string::npos && s.empty())) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    is_first = false;
  }
  return out;
}

const std::set<std::string>& filter_names() {
  static const std::set<std::string> names = {
      "trim", "length", "count", "string", "upper", "lower", "capitalize", "title", "tojson", "default", "d",
      "first", "last", "join", "replace", "items", "dictsort", "list", "safe", "map", "select", "reject",
      "selectattr", "rejectattr", "int", "float", "abs", "sort", "reverse", "unique", "min", "max", "sum",
      "indent", "round", "wordcount", "e", "escape"};
  return names;
}

const std::set<std::string>& test_names() {
  static const std::set<std::string> names = {
      "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
      "mapping", "iterable", "sequence", "callable", "sameas", "eq", "equalto", "==", "ne", "!=", "lt", "<",
      "lessthan", "gt", ">", "greaterthan", "le", "<=", "ge", ">=", "in", "odd", "even", "divisibleby", "lower",
      "upper"};
  return names;
}

}  // namespace

[[noreturn]] void undefined_error(const Value& undefined) { throw EvalError(undefined.s); }

bool is_known_filter(const std::string& name) { return filter_names().count(name) > 0; }
bool is_known_test(const std::string& name) { return test_names().count(name) > 0; }

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List:
      if (v.list->lazy) {  // single pass: a second one sees nothing
        std::vector<Value> out;
        out.swap(v.list->items);
        return out;
      }
      return v.list->items;
    case Value::Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      for (char32_t c : utf8_decode(v.s)) chars.push_back(Value::string(utf8_encode(U32(1, c))));
      return chars;
    }
    default: fail(str("'", type_name(v), "' object is not iterable"));
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Value::Kind::Undefined: undefined_error(obj);
    case Value::Kind::String: return string_method(obj, name);
    case Value::Kind::Dict: {
      if (!obj.dict->is_namespace && !obj.dict->is_loop) {
        Value m = dict_method(obj, name);
        if (m.kind == Value::Kind::Func) return m;
      }
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(str("'", type_name(obj), " object' has no attribute '", name, "'"));
    }
    case Value::Kind::None: return Value::undefined(str("'None' has no attribute '", name, "'"));
    default: return Value::undefined(str("'", type_name(obj), " object' has no attribute '", name, "'"));
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Value::Kind::Undefined: undefined_error(obj);
    case Value::Kind::Dict:
      if (key.is_string()) {
        if (const Value* v = obj.dict->find(key.s)) return *v;
        if (!obj.dict->is_namespace && !obj.dict->is_loop) {
          Value m = dict_method(obj, key.s);
          if (m.kind == Value::Kind::Func) return m;
        }
      }
      return Value::undefined(str("'", type_name(obj), " object' has no attribute ", to_repr(key)));
    case Value::Kind::List:
      if (obj.list->lazy) return Value::undefined("'generator' object is not subscriptable");
      [[fallthrough]];
    case Value::Kind::String:
      if (key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool) {
        int64_t k = key.kind == Value::Kind::Bool ? key.b : key.i;
        if (obj.is_list()) {
          int64_t n = static_cast<int64_t>(obj.list->items.size());
          if (k < 0) k += n;
          if (k >= 0 && k < n) return obj.list->items[static_cast<size_t>(k)];
        } else {
          U32 t = utf8_decode(obj.s);
          int64_t n = static_cast<int64_t>(t.size());
          if (k < 0) k += n;
          if (k >= 0 && k < n) return Value::string(utf8_encode(t.substr(static_cast<size_t>(k), 1)));
        }
        return Value::undefined(str("'", type_name(obj), " object' has no attribute ", to_repr(key)));
      }
      if (key.is_string()) return get_attr(obj, key.s);
      return Value::undefined(str("'", type_name(obj), " object' has no attribute ", to_repr(key)));
    case Value::Kind::None: return Value::undefined(str("'None' has no attribute ", to_repr(key)));
    default: return Value::undefined(str("'", type_name(obj), " object' has no attribute ", to_repr(key)));
  }
}

Value make_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) undefined_error(obj);
  if ((!obj.is_list() || obj.list->lazy) && !obj.is_string()) fail(str("'", type_name(obj), "' object is not subscriptable"));
  U32 text;
  int64_t len;
  if (obj.is_string()) {
    text = utf8_decode(obj.s);
    len = static_cast<int64_t>(text.size());
  } else {
    len = static_cast<int64_t>(obj.list->items.size());
  }
  int64_t b, e, st;
  adjust_slice(len, start, stop, step, b, e, st);
  std::vector<size_t> idx;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) idx.push_back(static_cast<size_t>(k));
  if (obj.is_string()) {
    U32 out;
    for (size_t k : idx) out += text[k];
    return Value::string(utf8_encode(out));
  }
  std::vector<Value> items;
  for (size_t k : idx) items.push_back(obj.list->items[k]);
  return Value::new_list(std::move(items), obj.list->tuple);
}

bool apply_test(const std::string& name, const Value& v, CallArgs& a) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == K::Dict && !v.dict->is_namespace && !v.dict->is_loop;
  if (name == "iterable") return v.kind == K::Undefined || v.kind == K::String || v.kind == K::List || v.kind == K::Dict;
  if (name == "sequence")
    return v.kind == K::Undefined || v.kind == K::String || (v.kind == K::List && !v.list->lazy) ||
           (v.kind == K::Dict && !v.dict->is_namespace && !v.dict->is_loop);
  if (name == "callable") return v.kind == K::Func;
  Value other = a.get(0, "other");
  if (name == "sameas") {
    if (v.kind != other.kind) return false;
    if (v.kind == K::None) return true;
    if (v.kind == K::Bool) return v.b == other.b;
    if (v.kind == K::List) return v.list == other.list;
    if (v.kind == K::Dict) return v.dict == other.dict;
    return equals(v, other);
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "lt" || name == "<" || name == "lessthan") return compare(v, other, "<") < 0;
  if (name == "gt" || name == ">" || name == "greaterthan") return compare(v, other, ">") > 0;
  if (name == "le" || name == "<=") return compare(v, other, "<=") <= 0;
  if (name == "ge" || name == ">=") return compare(v, other, ">=") >= 0;
  if (name == "in") {
    for (const Value& x : other.is_string() ? std::vector<Value>{} : iterate(other))
      if (equals(x, v)) return true;
    return other.is_string() && v.is_string() && other.s.find(v.s) != std::string::npos;
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    // value % n, compared as Python does (floats included).
    Value divisor = name == "divisibleby" ? other : Value::integer(2);
    if (!v.is_number() || !divisor.is_number()) fail(str("unsupported operand type(s) for %: '", type_name(v), "' and '", type_name(divisor), "'"));
    double x = v.as_double(), d = divisor.as_double();
    if (d == 0) fail("integer division or modulo by zero");
    double m = std::fmod(x, d);
    if (m != 0 && ((d < 0) != (m < 0))) m += d;
    if (name == "divisibleby") return m == 0;
    return (m == 1) == (name == "odd");
  }
  if (name == "lower" || name == "upper") {
    CallArgs none;
    return string_method(Value::string(to_str(v)), name == "lower" ? "islower" : "isupper").fn->operator()(none).b;
  }
  fail(str("unsupported test '", name, "'"));
}

Value apply_filter(const std::string& name, const Value& v, CallArgs& a) {
  using K = Value::Kind;
  if (name == "safe" || name == "e" || name == "escape") return v;  // no autoescape in chat templates
  if (name == "default" || name == "d") {
    Value dflt = a.get(0, "default_value");
    Value boolean = a.get(1, "boolean");
    if (dflt.is_undefined()) dflt = Value::string("");
    if (v.is_undefined() || (boolean.truthy() && !v.truthy())) return dflt;
    return v;
  }
  if (name == "length" || name == "count") return Value::integer(static_cast<int64_t>(py_len(v)));
  if (name == "string") return Value::string(to_str(v));
  if (name == "tojson") {
    Value indent = a.get(0, "indent"), seps = a.get(1, "separators");
    int ind = indent.is_undefined() || indent.is_none() ? -1 : static_cast<int>(as_int(indent, "indent"));
    std::string item_sep = ind >= 0 ? "," : ", ", key_sep = ": ";
    if (seps.is_list() && seps.list->items.size() == 2) {
      item_sep = to_str(seps.list->items[0]);
      key_sep = to_str(seps.list->items[1]);
    }
    if (v.is_undefined()) fail("Object of type Undefined is not JSON serializable");
    return Value::string(to_json_text(v, ind, item_sep, key_sep, a.get(2, "sort_keys").truthy(),
                                     a.get(3, "ensure_ascii").truthy()));
  }
  if (name == "trim") return Value::string(py_strip(to_str(v), a.get(0, "chars"), true, true));
  if (name == "upper" || name == "lower")
    return Value::string(utf8_encode(map_case(utf8_decode(to_str(v)), name == "upper")));
  if (name == "capitalize") return Value::string(py_capitalize(to_str(v)));
  if (name == "title") {
    // jinja2's title: words start after '-', whitespace or an opening bracket.
    U32 t = utf8_decode(to_str(v));
    bool start = true;
    for (char32_t& c : t) {
      bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
      if (!sep) c = map_case(U32(1, c), start)[0];
      start = sep;
    }
    return Value::string(utf8_encode(t));
  }
  if (name == "replace") {
    Value o = a.get(0, "old"), n = a.get(1, "new"), c = a.get(2, "count");
    return Value::string(py_replace(to_str(v), to_str(o), to_str(n), c.is_undefined() || c.is_none() ? -1 : as_int(c, "count")));
  }
  if (name == "first" && v.is_list() && v.list->lazy) {
    if (v.list->items.empty()) return Value::undefined("No first item, sequence was empty.");
    Value head = v.list->items.front();
    v.list->items.erase(v.list->items.begin());  // next(iter(generator)) consumes it
    return head;
  }
  if (name == "last" && v.is_list() && v.list->lazy) fail("'generator' object is not reversible");
  if (name == "first" || name == "last") {
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined(str("No ", name, " item, sequence was empty."));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    Value sep = a.get(0, "d"), attribute = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep.is_undefined() ? "" : to_str(sep);
      first = false;
      out += to_str(attribute.is_undefined() || attribute.is_none() ? item : attr_path(item, attribute));
    }
    return Value::string(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::new_generator({});
    if (!v.is_dict()) fail(str("Can only get item pairs from a mapping, not '", type_name(v), "'"));
    return Value::new_generator(items_of(v).list->items);
  }
  if (name == "dictsort") {
    if (!v.is_dict()) fail("dictsort expects a mapping");
    bool case_sensitive = a.get(0, "case_sensitive").truthy();
    Value by = a.get(1, "by");
    bool by_value = by.is_string() && by.s == "value";
    bool reverse = a.get(2, "reverse").truthy();
    std::vector<Value> pairs = items_of(v).list->items;
    auto sort_key = [&](const Value& p) {
      Value k = p.list->items[by_value ? 1 : 0];
      if (!case_sensitive && k.is_string()) k = Value::string(utf8_encode(map_case(utf8_decode(k.s), false)));
      return k;
    };
    std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
      int c = compare(sort_key(x), sort_key(y), "<");
      return reverse ? c > 0 : c < 0;
    });
    return Value::new_list(std::move(pairs));
  }
  if (name == "list") return Value::new_list(iterate(v));
  if (name == "map") {
    std::vector<Value> out;
    if (!v.truthy()) return Value::new_generator({});  // as select_or_reject: falsy input maps to nothing
    if (const Value* attribute = a.keyword_arg("attribute")) {
      const Value* dflt = a.keyword_arg("default");
      for (const Value& item : iterate(v)) {
        Value x = attr_path(item, *attribute);
        out.push_back(x.is_undefined() && dflt ? *dflt : x);
      }
      return Value::new_generator(std::move(out));
    }
    if (a.positional.empty()) fail("map requires a filter name or attribute=");
    std::string filter = to_str(a.positional[0]);
    std::vector<Value> extra(a.positional.begin() + 1, a.positional.end());
    for (const Value& item : iterate(v)) out.push_back(call_filter(filter, item, extra));
    return Value::new_generator(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return select_like(name, v, a);
  if ((name == "int" || name == "float") && v.is_undefined()) undefined_error(v);
  if (name == "int") {
    Value dflt = a.get(0, "default");
    Value fallback = dflt.is_undefined() ? Value::integer(0) : dflt;
    if (v.kind == K::Int) return v;
    if (v.kind == K::Bool) return Value::integer(v.b);
    if (v.kind == K::Float) return Value::integer(static_cast<int64_t>(v.f));
    if (v.is_string()) {
      std::string t = py_strip(v.s, Value::none(), true, true);
      try {
        size_t used = 0;
        long long x = std::stoll(t, &used, 10);
        if (used == t.size()) return Value::integer(x);
        double f = std::stod(t, &used);
        if (used == t.size()) return Value::integer(static_cast<int64_t>(f));
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "float") {
    Value dflt = a.get(0, "default");
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string t = py_strip(v.s, Value::none(), true, true);
        double f = std::stod(t, &used);
        if (used == t.size()) return Value::number(f);
      } catch (const std::exception&) {
      }
    }
    return dflt.is_undefined() ? Value::number(0) : dflt;
  }
  if (name == "abs") {
    if (v.kind == K::Int || v.kind == K::Bool) return Value::integer(std::llabs(v.kind == K::Bool ? v.b : v.i));
    if (v.kind == K::Float) return Value::number(std::fabs(v.f));
    fail(str("bad operand type for abs(): '", type_name(v), "'"));
  }
  if (name == "round") {
    Value prec = a.get(0, "precision");
    double p = std::pow(10.0, prec.is_undefined() ? 0 : static_cast<double>(as_int(prec, "precision")));
    return Value::number(std::nearbyint(v.as_double() * p) / p);
  }
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
    std::vector<Value> items = iterate(v);
    bool reverse = name == "sort" && a.get(0, "reverse").truthy();
    bool case_sensitive = a.get(name == "sort" ? 1 : 0, "case_sensitive").truthy();
    Value attribute = a.get(name == "sort" ? 2 : 1, "attribute");
    auto key = [&](const Value& x) {
      Value k = attribute.is_undefined() || attribute.is_none() ? x : attr_path(x, attribute);
      if (!case_sensitive && k.is_string()) k = Value::string(utf8_encode(map_case(utf8_decode(k.s), false)));
      return k;
    };
    if (name == "unique") {
      std::vector<Value> out, seen;
      for (const Value& x : items) {
        Value k = key(x);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
          seen.push_back(k);
          out.push_back(x);
        }
      }
      return Value::new_generator(std::move(out));
    }
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      int c = compare(key(x), key(y), "<");
      return reverse ? c > 0 : c < 0;
    });
    if (name == "sort") return Value::new_list(std::move(items));
    if (items.empty()) return Value::undefined(str("No aggregated item, sequence was empty."));
    return name == "min" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      U32 t = utf8_decode(v.s);
      std::reverse(t.begin(), t.end());
      return Value::string(utf8_encode(t));
    }
    bool was_lazy = v.is_list() && v.list->lazy;
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    // reversed(list) is an iterator; a generator is listed first (jinja2's fallback).
    return was_lazy ? Value::new_list(std::move(items)) : Value::new_generator(std::move(items));
  }
  if (name == "sum") {
    Value attribute = a.get(0, "attribute"), start = a.get(1, "start");
    Value total = start.is_undefined() ? Value::integer(0) : start;
    for (const Value& x : iterate(v)) {
      Value item = attribute.is_undefined() || attribute.is_none() ? x : attr_path(x, attribute);
      if (!item.is_number() || !total.is_number()) fail("sum expects numbers");
      bool ints = item.kind != K::Float && total.kind != K::Float;
      total = ints ? Value::integer((total.kind == K::Bool ? total.b : total.i) + (item.kind == K::Bool ? item.b : item.i))
                   : Value::number(total.as_double() + item.as_double());
    }
    return total;
  }
  if (name == "indent" && !v.is_string())
    fail(str("unsupported operand type(s) for +=: '", type_name(v), "' and 'str'"));
  if (name == "indent")
    return Value::string(indent_text(to_str(v), a.get(0, "width"), a.get(1, "first").truthy(), a.get(2, "blank").truthy()));
  if (name == "wordcount") {  // runs of \w (letters, digits, underscore)
    int64_t words = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(to_str(v))) {
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      bool w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
               (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value::integer(words);
  }
  fail(str("unsupported filter '", name, "'"));
}

}  // namespace tune::text::jinja

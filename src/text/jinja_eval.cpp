// Tree-walking evaluator. Scoping follows jinja2: each for-loop iteration and each macro call gets
// a fresh frame, `set` writes to the innermost frame (so a loop cannot change outer variables:
// templates use namespace() for that), `if` opens no frame.
#include <cmath>
#include <cstring>

#include "text/jinja_ast.h"
#include "tune/core/error.h"
#include "tune/text/jinja.h"

namespace tune::text::jinja {
namespace {

using Frame = std::vector<std::pair<std::string, Value>>;
enum class Flow { Normal, Break, Continue };

// An error that already carries origin:line:col; inner nodes locate first, outer ones pass it on.
struct LocatedError : Error {
  using Error::Error;
};

class Renderer {
 public:
  Renderer(const std::string& origin, const RenderOptions& options) : origin_(origin), options_(options) {}

  RenderResult run(const Body& body, const Json& variables) {
    Frame globals;
    add_globals(globals);
    frames_.push_back(std::move(globals));
    Frame root;
    if (!variables.is_null()) {
      if (!variables.is_object()) throw Error(str(origin_, ": template variables must be a JSON object"));
      for (const auto& [k, v] : variables.items()) root.emplace_back(k, Value::from_json(v));
    }
    frames_.push_back(std::move(root));
    RenderResult result;
    out_ = &result.text;
    exec_body(body);
    result.generation = std::move(generation_);
    return result;
  }

 private:
  const std::string& origin_;
  const RenderOptions& options_;
  std::vector<Frame> frames_;
  std::string* out_ = nullptr;
  int capture_depth_ = 0;
  int macro_depth_ = 0;
  std::vector<std::pair<size_t, size_t>> generation_;

  [[noreturn]] void fail(const Loc& loc, const std::string& msg) const {
    throw LocatedError(str(origin_, ":", loc.line, ":", loc.col, ": ", msg));
  }

  // ---- scopes ----
  Value lookup(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f)
      for (const auto& [k, v] : *f)
        if (k == name) return v;
    return Value::undefined(str("'", name, "' is undefined"));
  }
  void assign(const std::string& name, Value v) {
    Frame& f = frames_.back();
    for (auto& [k, old] : f)
      if (k == name) {
        old = std::move(v);
        return;
      }
    f.emplace_back(name, std::move(v));
  }

  void add_globals(Frame& g) {
    g.emplace_back("raise_exception", Value::function([](CallArgs& a) -> Value {
      throw EvalError(to_str(a.get(0, "message")));
    }));
    g.emplace_back("strftime_now", Value::function([this](CallArgs& a) -> Value {
      Value fmt = a.get(0, "format");
      if (!fmt.is_string()) throw EvalError("strftime_now() expects a format string");
      std::time_t t = options_.now ? *options_.now : std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[512];
      size_t n = std::strftime(buf, sizeof buf, fmt.s.c_str(), &tm);
      return Value::string(std::string(buf, n));
    }));
    g.emplace_back("namespace", Value::function([](CallArgs& a) -> Value {
      Value ns = Value::new_dict();
      ns.dict->is_namespace = true;
      for (const Value& p : a.positional) {
        if (!p.is_dict()) throw EvalError("namespace() positional argument must be a mapping");
        for (const auto& [k, v] : p.dict->items) ns.dict->set(k, v);
      }
      for (const auto& [k, v] : a.keyword) {
        if (!k.empty() && k[0] == '_') throw EvalError(str("cannot store underscore-prefixed attribute '", k, "' on a namespace"));
        ns.dict->set(k, v);
      }
      return ns;
    }));
    g.emplace_back("dict", Value::function([](CallArgs& a) -> Value {
      Value d = Value::new_dict();
      for (const Value& p : a.positional) {
        if (!p.is_dict()) throw EvalError("dict() positional argument must be a mapping");
        for (const auto& [k, v] : p.dict->items) d.dict->set(k, v);
      }
      for (const auto& [k, v] : a.keyword) d.dict->set(k, v);
      return d;
    }));
    g.emplace_back("range", Value::function([](CallArgs& a) -> Value {
      std::vector<int64_t> n;
      for (const Value& v : a.positional) {
        if (v.kind != Value::Kind::Int && v.kind != Value::Kind::Bool)
          throw EvalError(str("'", type_name(v), "' object cannot be interpreted as an integer"));
        n.push_back(v.kind == Value::Kind::Bool ? v.b : v.i);
      }
      if (n.empty() || n.size() > 3) throw EvalError("range expected 1 to 3 arguments");
      int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1], step = n.size() == 3 ? n[2] : 1;
      if (step == 0) throw EvalError("range() arg 3 must not be zero");
      std::vector<Value> items;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        items.push_back(Value::integer(k));
        if (items.size() > 100000) throw EvalError("range too big");
      }
      return Value::new_list(std::move(items));
    }));
  }

  // ---- statements ----
  Flow exec_body(const Body& body) {
    for (const StmtPtr& s : body) {
      Flow f = exec(*s);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::Text: *out_ += s.text; return Flow::Normal;
      case Stmt::Kind::Output: *out_ += to_output(eval(*s.expr)); return Flow::Normal;
      case Stmt::Kind::If:
        for (size_t k = 0; k < s.conds.size(); ++k)
          if (eval(*s.conds[k]).truthy()) return exec_body(s.bodies[k]);
        if (s.bodies.size() > s.conds.size()) return exec_body(s.bodies.back());
        return Flow::Normal;
      case Stmt::Kind::For: exec_for(s); return Flow::Normal;
      case Stmt::Kind::Set: exec_set(s); return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        Value v = Value::string(capture(s.bodies[0]));
        if (s.filter) v = eval_filter_chain(*s.filter, v);
        assign(s.names[0], v);
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: assign(s.text, make_macro(s)); return Flow::Normal;
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
      case Stmt::Kind::Generation: {
        size_t begin = out_->size();
        Flow f = exec_body(s.bodies[0]);
        if (capture_depth_ == 0) generation_.emplace_back(begin, out_->size());
        return f;
      }
    }
    return Flow::Normal;
  }

  std::string to_output(const Value& v) {
    return to_str(v);
  }

  std::string capture(const Body& body) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    ++capture_depth_;
    try {
      exec_body(body);
    } catch (...) {
      out_ = saved;
      --capture_depth_;
      throw;
    }
    out_ = saved;
    --capture_depth_;
    return buf;
  }

  void bind_targets(Frame& frame, const std::vector<std::string>& names, const Value& item, const Loc& loc) {
    if (names.size() == 1) {
      frame.emplace_back(names[0], item);
      return;
    }
    std::vector<Value> parts = item.is_list() ? item.list->items : iterate(item);
    if (parts.size() != names.size())
      fail(loc, str(parts.size() < names.size() ? "not enough" : "too many", " values to unpack (expected ",
                    names.size(), ", got ", parts.size(), ")"));
    for (size_t k = 0; k < names.size(); ++k) frame.emplace_back(names[k], parts[k]);
  }

  void exec_for(const Stmt& s) {
    Value seq = eval(*s.expr);
    if (seq.is_none() || seq.kind == Value::Kind::Int || seq.kind == Value::Kind::Float || seq.kind == Value::Kind::Bool)
      fail(s.expr->loc, str("'", type_name(seq), "' object is not iterable"));
    std::vector<Value> items = iterate(seq);
    if (s.cond) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        Frame f;
        bind_targets(f, s.names, item, s.loc);
        frames_.push_back(std::move(f));
        bool keep = eval(*s.cond).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec_body(s.bodies[1]);
      return;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      Value loop = Value::new_dict();
      loop.dict->is_loop = true;
      auto& L = loop.dict->items;
      L.emplace_back("index", Value::integer(k + 1));
      L.emplace_back("index0", Value::integer(k));
      L.emplace_back("revindex", Value::integer(n - k));
      L.emplace_back("revindex0", Value::integer(n - k - 1));
      L.emplace_back("first", Value::boolean(k == 0));
      L.emplace_back("last", Value::boolean(k == n - 1));
      L.emplace_back("length", Value::integer(n));
      L.emplace_back("depth", Value::integer(1));
      L.emplace_back("depth0", Value::integer(0));
      L.emplace_back("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
      L.emplace_back("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
      L.emplace_back("cycle", Value::function([k](CallArgs& a) -> Value {
        if (a.positional.empty()) throw EvalError("no items for cycling given");
        return a.positional[static_cast<size_t>(k) % a.positional.size()];
      }));
      Frame f;
      bind_targets(f, s.names, items[k], s.loc);
      f.emplace_back("loop", loop);
      frames_.push_back(std::move(f));
      Flow flow;
      try {
        flow = exec_body(s.bodies[0]);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (flow == Flow::Break) break;
    }
  }

  void exec_set(const Stmt& s) {
    Value v = eval(*s.expr);
    if (!s.attr.empty()) {
      Value target = lookup(s.names[0]);
      if (!target.is_dict() || !target.dict->is_namespace)
        fail(s.loc, str("cannot assign attribute on non-namespace object '", s.names[0], "'"));
      if (s.attr[0] == '_') fail(s.loc, str("cannot store underscore-prefixed attribute '", s.attr, "' on a namespace"));
      target.dict->set(s.attr, v);
      return;
    }
    if (s.names.size() == 1) {
      assign(s.names[0], v);
      return;
    }
    Frame tmp;
    bind_targets(tmp, s.names, v, s.loc);
    for (auto& [k, val] : tmp) assign(k, val);
  }

  Value make_macro(const Stmt& s) {
    const Stmt* def = &s;
    return Value::function([this, def](CallArgs& a) -> Value {
      if (a.positional.size() > def->names.size())
        throw EvalError(str("macro '", def->text, "' takes not more than ", def->names.size(), " argument(s)"));
      for (const auto& [k, v] : a.keyword) {
        bool known = false;
        for (const auto& n : def->names) known = known || n == k;
        if (!known) throw EvalError(str("macro '", def->text, "' takes no keyword argument '", k, "'"));
      }
      // Bounded so a runaway recursive macro is an error, not a stack overflow.
      if (macro_depth_ >= 256) throw EvalError(str("macro '", def->text, "' nested deeper than 256 calls"));
      struct DepthGuard {
        int& d;
        explicit DepthGuard(int& x) : d(++x) {}
        ~DepthGuard() { --d; }
      } guard(macro_depth_);
      // The macro body sees the globals and the template's top-level variables, not the caller's locals.
      std::vector<Frame> saved(frames_.begin() + 2, frames_.end());
      frames_.resize(2);
      frames_.emplace_back();
      std::string result;
      try {
        for (size_t k = 0; k < def->names.size(); ++k) {
          Value v;
          if (k < a.positional.size()) v = a.positional[k];
          else if (const Value* kw = a.keyword_arg(def->names[k])) v = *kw;
          else if (def->defaults[k]) v = eval(*def->defaults[k]);
          else v = Value::undefined(str("'", def->names[k], "' is undefined"));
          frames_.back().emplace_back(def->names[k], v);
        }
        result = capture(def->bodies[0]);
      } catch (...) {
        frames_.resize(2);
        frames_.insert(frames_.end(), saved.begin(), saved.end());
        throw;
      }
      frames_.resize(2);
      frames_.insert(frames_.end(), saved.begin(), saved.end());
      return Value::string(std::move(result));
    });
  }

  // ---- expressions ----
  Value eval(const Expr& e) {
    try {
      return eval_inner(e);
    } catch (const LocatedError&) {
      throw;
    } catch (const std::exception& ex) {
      fail(e.loc, ex.what());
    }
  }

  CallArgs eval_args(const Expr& e, size_t skip) {
    CallArgs a;
    for (size_t k = skip; k < e.args.size(); ++k) a.positional.push_back(eval(*e.args[k]));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v));
    return a;
  }

  Value eval_filter_chain(const Expr& f, const Value& subject) {
    // A {% set x | f %} chain: the innermost filter has a null subject.
    Value inner = f.args[0] ? eval_filter_chain(*f.args[0], subject) : subject;
    CallArgs a = eval_args(f, 1);
    try {
      return apply_filter(f.name, inner, a);
    } catch (const LocatedError&) {
      throw;
    } catch (const std::exception& ex) {
      fail(f.loc, ex.what());
    }
  }

  Value call_value(const Value& callee, CallArgs& a) {
    if (callee.is_undefined()) undefined_error(callee);
    if (callee.kind != Value::Kind::Func) throw EvalError(str("'", type_name(callee), "' object is not callable"));
    return (*callee.fn)(a);
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.literal;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::GetAttr: return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::GetItem: return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Slice: {
        Value obj = eval(*e.args[0]);
        auto part = [&](int k) { return e.args[k] ? eval(*e.args[k]) : Value::none(); };
        return make_slice(obj, part(1), part(2), part(3));
      }
      case Expr::Kind::Call: {
        Value callee = eval(*e.args[0]);
        CallArgs a = eval_args(e, 1);
        return call_value(callee, a);
      }
      case Expr::Kind::Filter: {
        Value subject = eval(*e.args[0]);
        CallArgs a = eval_args(e, 1);
        return apply_filter(e.name, subject, a);
      }
      case Expr::Kind::Test: {
        Value subject = eval(*e.args[0]);
        CallArgs a = eval_args(e, 1);
        return Value::boolean(apply_test(e.name, subject, a) != e.negated);
      }
      case Expr::Kind::Unary: {
        Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.is_undefined()) undefined_error(v);
        if (v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool) {
          int64_t x = v.kind == Value::Kind::Bool ? v.b : v.i;
          return Value::integer(e.name == "-" ? -x : x);
        }
        if (v.kind == Value::Kind::Float) return Value::number(e.name == "-" ? -v.f : v.f);
        throw EvalError(str("bad operand type for unary ", e.name, ": '", type_name(v), "'"));
      }
      case Expr::Kind::Binary: return eval_binary(e);
      case Expr::Kind::Cond:
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        std::vector<Value> items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::new_list(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::Dict: {
        Value d = Value::new_dict();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (!key.is_string()) throw EvalError("unsupported construct: dict literal with a non-string key");
          d.dict->set(key.s, eval(*e.args[k + 1]));
        }
        return d;
      }
    }
    return Value::none();
  }

  Value eval_binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? eval(*e.args[1]) : l;
    }
    if (op == "or") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? l : eval(*e.args[1]);
    }
    Value l = eval(*e.args[0]);
    Value r = eval(*e.args[1]);
    if (op == "~") return Value::string(to_str(l) + to_str(r));
    if (op == "==") return Value::boolean(equals(l, r));
    if (op == "!=") return Value::boolean(!equals(l, r));
    if (op == "in" || op == "notin") return Value::boolean(contains(r, l) == (op == "in"));
    if (l.is_undefined()) undefined_error(l);
    if (r.is_undefined()) undefined_error(r);
    if (op == "<") return Value::boolean(compare(l, r, op) < 0);
    if (op == ">") return Value::boolean(compare(l, r, op) > 0);
    if (op == "<=") return Value::boolean(compare(l, r, op) <= 0);
    if (op == ">=") return Value::boolean(compare(l, r, op) >= 0);
    return arithmetic(op, l, r);
  }

  static bool contains(const Value& container, const Value& item) {
    switch (container.kind) {
      case Value::Kind::Undefined: return false;
      case Value::Kind::String:
        if (!item.is_string())
          throw EvalError(str("'in <string>' requires string as left operand, not ", type_name(item)));
        return container.s.find(item.s) != std::string::npos;
      case Value::Kind::List:
        for (const Value& v : iterate(container))
          if (equals(v, item)) return true;
        return false;
      case Value::Kind::Dict:
        return item.is_string() && container.dict->find(item.s) != nullptr;
      default:
        throw EvalError(str("argument of type '", type_name(container), "' is not iterable"));
    }
  }

  static Value arithmetic(const std::string& op, const Value& l, const Value& r) {
    auto unsupported = [&]() -> Value {
      throw EvalError(str("unsupported operand type(s) for ", op, ": '", type_name(l), "' and '", type_name(r), "'"));
    };
    if (op == "+") {
      if (l.is_string() && r.is_string()) return Value::string(l.s + r.s);
      if (l.is_string()) throw EvalError(str("can only concatenate str (not \"", type_name(r), "\") to str"));
      if (l.is_list() && r.is_list() && l.list->tuple == r.list->tuple && !l.list->lazy && !r.list->lazy) {
        std::vector<Value> items = l.list->items;
        items.insert(items.end(), r.list->items.begin(), r.list->items.end());
        return Value::new_list(std::move(items), l.list->tuple);
      }
      if (l.is_list()) throw EvalError(str("can only concatenate list (not \"", type_name(r), "\") to list"));
    }
    if (op == "*") {
      auto repeatable = [](const Value& v) { return v.is_string() || (v.is_list() && !v.list->lazy); };
      const Value* seq = repeatable(l) ? &l : repeatable(r) ? &r : nullptr;
      const Value* count = seq == &l ? &r : &l;
      if (seq && (count->kind == Value::Kind::Int || count->kind == Value::Kind::Bool)) {
        int64_t n = count->kind == Value::Kind::Bool ? count->b : count->i;
        if (n > 1000000) throw EvalError("repeat count too large");
        if (seq->is_string()) {
          std::string out;
          for (int64_t k = 0; k < n; ++k) out += seq->s;
          return Value::string(out);
        }
        std::vector<Value> items;
        for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
        return Value::new_list(std::move(items), seq->list->tuple);
      }
    }
    if (op == "%" && l.is_string()) throw EvalError("unsupported construct: printf-style string formatting with '%'");
    if (!l.is_number() || !r.is_number()) return unsupported();
    bool ints = l.kind != Value::Kind::Float && r.kind != Value::Kind::Float;
    int64_t a = l.kind == Value::Kind::Bool ? l.b : l.i, b = r.kind == Value::Kind::Bool ? r.b : r.i;
    double x = l.as_double(), y = r.as_double();
    if (op == "+") return ints ? Value::integer(a + b) : Value::number(x + y);
    if (op == "-") return ints ? Value::integer(a - b) : Value::number(x - y);
    if (op == "*") return ints ? Value::integer(a * b) : Value::number(x * y);
    if (op == "/") {
      if (y == 0) throw EvalError("division by zero");
      return Value::number(x / y);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (b == 0) throw EvalError("integer division or modulo by zero");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {
          --q;
          m += b;
        }
        return Value::integer(op == "//" ? q : m);
      }
      if (y == 0) throw EvalError("float division by zero");
      if (op == "//") return Value::number(std::floor(x / y));
      double m = std::fmod(x, y);  // Python: the result takes the divisor's sign
      if (m != 0) {
        if ((y < 0) != (m < 0)) m += y;
      } else {
        m = std::copysign(0.0, y);
      }
      return Value::number(m);
    }
    if (op == "**") {
      if (ints && b >= 0) {
        int64_t result = 1;
        for (int64_t k = 0; k < b; ++k) result *= a;
        return Value::integer(result);
      }
      return Value::number(std::pow(x, y));
    }
    return unsupported();
  }
};

}  // namespace

Template Template::parse(std::string source, std::string origin) {
  Template t;
  t.body_ = std::make_shared<const Body>(parse_template(source, origin));
  t.source_ = std::make_shared<const std::string>(std::move(source));
  t.origin_ = std::move(origin);
  return t;
}

RenderResult Template::render(const Json& variables, const RenderOptions& options) const {
  Renderer r(origin_, options);
  return r.run(*body_, variables);
}

}  // namespace tune::text::jinja

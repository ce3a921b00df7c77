#pragma once
// Syntax tree of a parsed template. One node type for expressions and one for statements: the
// subset is small and the interpreter switches on `kind`.
#include <memory>
#include <string>
#include <vector>

#include "text/jinja_value.h"

namespace tune::text::jinja {

struct Loc {
  int line = 1;
  int col = 1;
};

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // literal
    Name,      // name
    GetAttr,   // args[0].name
    GetItem,   // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    Call,      // args[0](args[1..], kwargs)
    Filter,    // args[0] | name(args[1..], kwargs)
    Test,      // args[0] is [not] name(args[1..])
    Unary,     // name in {"-", "+", "not"}
    Binary,    // args[0] name args[1]; name is the operator ("+", "in", "notin", "and", ...)
    Cond,      // args[1] if args[0] else args[2] (args[2] may be null)
    List,      // [args...]
    Tuple,     // (args...)
    Dict,      // {args[0]: args[1], ...}
  };
  Kind kind;
  Loc loc;
  std::string name;
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::shared_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,        // text
    Output,      // {{ expr }}
    If,          // conds[i] -> bodies[i]; bodies.size() == conds.size() + 1 when there is an else
    For,         // for names in expr [if cond]: bodies[0], else bodies[1]
    Set,         // set names = expr | set names[0].attr = expr
    SetBlock,    // set names[0] %}bodies[0]{% endset, piped through filter (an Expr chain on a null subject)
    Macro,       // macro text(names with defaults) bodies[0]
    Break,
    Continue,
    Generation,  // {% generation %}bodies[0]{% endgeneration %} (transformers' AssistantTracker)
  };
  Kind kind;
  Loc loc;
  std::string text;
  std::string attr;
  std::vector<std::string> names;
  std::vector<ExprPtr> defaults;
  ExprPtr expr;
  ExprPtr cond;
  ExprPtr filter;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
};

// Parses template source into statements; errors name origin:line:col.
Body parse_template(const std::string& source, const std::string& origin);

// Built-ins (jinja_builtins.cpp). Errors are thrown as EvalError without a location; the evaluator
// adds the location of the node being evaluated.
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& subject, CallArgs& args);
bool apply_test(const std::string& name, const Value& subject, CallArgs& args);
// obj.name as jinja2's getattr: a method of str/dict/list first, then the item.
Value get_attr(const Value& obj, const std::string& name);
// obj[key] as jinja2's getitem: the item first, then the attribute.
Value get_item(const Value& obj, const Value& key);
Value make_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The items a for loop visits (dict keys, string characters); Undefined gives none.
std::vector<Value> iterate(const Value& v);
[[noreturn]] void undefined_error(const Value& undefined);

}  // namespace tune::text::jinja

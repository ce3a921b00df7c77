// Lexer and parser for the Jinja subset used by chat templates. Whitespace handling follows
// jinja2 with trim_blocks=True and lstrip_blocks=True (the transformers environment):
//   {%- / {{- / {#-   strip all whitespace before the tag
//   -%} / -}} / -#}   strip all whitespace after it
//   %} / #}           eat one newline right after (trim_blocks); {%+ / +%} opt out
//   {% / {#           at the start of a line eat the spaces and tabs before it (lstrip_blocks)
#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

#include "text/jinja_ast.h"
#include "tune/core/error.h"

namespace tune::text::jinja {
namespace {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Text content, name, operator, decoded string, number spelling
  size_t offset = 0;
};

// Python's str.isspace for the code point starting at s[i]; returns its byte length or 0.
size_t space_len(std::string_view s, size_t i) {
  unsigned char c = s[i];
  if (c < 0x80) return is_py_space(c) ? 1 : 0;
  size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (i + n > s.size()) return 0;
  std::u32string cp = utf8_decode(s.substr(i, n));
  return cp.size() == 1 && is_py_space(cp[0]) ? n : 0;
}

std::string rstrip_py(const std::string& s) {
  std::u32string cps = utf8_decode(s);
  while (!cps.empty() && is_py_space(cps.back())) cps.pop_back();
  return utf8_encode(cps);
}

class Lexer {
 public:
  Lexer(const std::string& src, const std::string& origin) : src_(src), origin_(origin) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t open = find_open(pos);
      if (open == std::string::npos) {
        push(Tok::Text, src_.substr(pos), pos);
        break;
      }
      char kind = src_[open + 1];  // '{', '%' or '#'
      char sign = open + 2 < src_.size() ? src_[open + 2] : 0;
      std::string text = src_.substr(pos, open - pos);
      if (sign == '-') {
        text = rstrip_py(text);
      } else if (sign != '+' && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) &&
            text.find_first_not_of(" \t", l_pos) == std::string::npos)
          text.resize(l_pos);
      }
      if (!text.empty()) push(Tok::Text, text, pos);
      size_t inner = open + 2 + ((sign == '-' || (sign == '+' && kind != '{')) ? 1 : 0);
      if (kind == '#') {
        pos = end_comment(open, inner);
      } else {
        push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", open);
        pos = lex_tag(inner, kind == '{' ? '}' : '%');
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    push(Tok::Eof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  const std::string& src_;
  const std::string& origin_;
  std::vector<Token> tokens_;

  void push(Tok type, std::string text, size_t offset) { tokens_.push_back({type, std::move(text), offset}); }

  [[noreturn]] void fail_at(size_t offset, const std::string& msg) const {
    int line = 1, col = 1;
    for (size_t k = 0; k < offset && k < src_.size(); ++k) {
      if (src_[k] == '\n') { ++line; col = 1; } else { ++col; }
    }
    throw Error(str(origin_, ":", line, ":", col, ": ", msg));
  }

  size_t find_open(size_t pos) const {
    for (size_t k = src_.find('{', pos); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  // After the closing marker: -X} strips all whitespace, X}\n eats one newline (not for }}).
  size_t after_close(size_t close_at, bool minus, bool plus, bool trim_newline) const {
    size_t pos = close_at + 2;
    if (minus) {
      while (pos < src_.size()) {
        size_t n = space_len(src_, pos);
        if (!n) break;
        pos += n;
      }
    } else if (!plus && trim_newline && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  size_t end_comment(size_t open, size_t inner) {
    size_t close = src_.find("#}", inner);
    if (close == std::string::npos) fail_at(open, "unterminated comment");
    bool minus = close > inner && src_[close - 1] == '-';
    bool plus = close > inner && src_[close - 1] == '+';
    return after_close(close, minus, plus, true);
  }

  size_t lex_tag(size_t pos, char closer) {
    int depth = 0;
    const Tok end_type = closer == '}' ? Tok::VarEnd : Tok::BlockEnd;
    while (true) {
      while (pos < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos]))) ++pos;
      if (pos >= src_.size()) fail_at(pos, closer == '}' ? "unexpected end of template, expected '}}'"
                                                         : "unexpected end of template, expected '%}'");
      if (depth == 0) {
        bool minus = src_[pos] == '-' || (src_[pos] == '+' && closer == '%');
        size_t at = pos + (minus ? 1 : 0);
        if (at + 1 < src_.size() && src_[at] == closer && src_[at + 1] == '}') {
          push(end_type, "", pos);
          return after_close(at, src_[pos] == '-', src_[pos] == '+', closer == '%');
        }
      }
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos;
        while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
        push(Tok::Name, src_.substr(pos, end - pos), pos);
        pos = end;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{},.:|;", c)) fail_at(pos, str("unexpected character '", c, "'"));
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail_at(pos, str("unexpected '", op, "'"));
          --depth;
        }
        push(Tok::Op, op, pos);
        pos += op.size();
      }
    }
  }

  size_t lex_number(size_t pos) {
    size_t end = pos;
    auto digits = [&] {
      while (end < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[end])) ||
                                   (src_[end] == '_' && end + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end + 1])))))
        ++end;
    };
    digits();
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      ++end;
      digits();
      is_float = true;
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t save = end++;
      if (end < src_.size() && (src_[end] == '+' || src_[end] == '-')) ++end;
      if (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) {
        digits();
        is_float = true;
      } else {
        end = save;
      }
    }
    std::string spelling = src_.substr(pos, end - pos);
    spelling.erase(std::remove(spelling.begin(), spelling.end(), '_'), spelling.end());
    push(is_float ? Tok::Float : Tok::Int, spelling, pos);
    return end;
  }

  // Python string literal escapes (jinja2 decodes with unicode-escape).
  size_t lex_string(size_t pos) {
    char quote = src_[pos];
    std::string out;
    size_t k = pos + 1;
    while (true) {
      if (k >= src_.size()) fail_at(pos, "unterminated string");
      char c = src_[k];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++k;
        continue;
      }
      if (k + 1 >= src_.size()) fail_at(pos, "unterminated string");
      char e = src_[k + 1];
      k += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (k + n > src_.size()) fail_at(k, "truncated escape");
          char32_t cp = static_cast<char32_t>(std::stoul(src_.substr(k, n), nullptr, 16));
          out += utf8_encode(std::u32string(1, cp));
          k += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            unsigned v = e - '0';
            for (int d = 0; d < 2 && k < src_.size() && src_[k] >= '0' && src_[k] <= '7'; ++d) v = v * 8 + (src_[k++] - '0');
            out += utf8_encode(std::u32string(1, static_cast<char32_t>(v)));
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(Tok::String, out, pos);
    return k + 1;
  }
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& src, const std::string& origin)
      : toks_(std::move(tokens)), src_(src), origin_(origin) {
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  Body parse_all() {
    std::string which;
    Body body = parse_until({}, which);
    return body;
  }

 private:
  std::vector<Token> toks_;
  size_t p_ = 0;
  const std::string& src_;
  const std::string& origin_;
  std::vector<size_t> line_starts_{0};
  int loop_depth_ = 0;

  Loc loc_of(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }
  [[noreturn]] void fail_at(const Token& t, const std::string& msg) const {
    Loc l = loc_of(t.offset);
    throw Error(str(origin_, ":", l.line, ":", l.col, ": ", msg));
  }
  const Token& peek(size_t ahead = 0) const { return toks_[std::min(p_ + ahead, toks_.size() - 1)]; }
  const Token& next() { return toks_[p_ < toks_.size() - 1 ? p_++ : p_]; }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).type == Tok::Op && peek(ahead).text == op; }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == Tok::Name && peek(ahead).text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail_at(peek(), str("expected '", op, "', got ", describe(peek())));
    next();
  }
  std::string expect_name() {
    if (peek().type != Tok::Name) fail_at(peek(), str("expected a name, got ", describe(peek())));
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != Tok::BlockEnd) fail_at(peek(), str("expected end of statement '%}', got ", describe(peek())));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof: return "end of template";
      case Tok::VarEnd: return "'}}'";
      case Tok::BlockEnd: return "'%}'";
      case Tok::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  ExprPtr node(Expr::Kind kind, const Token& at) {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->loc = loc_of(at.offset);
    return e;
  }
  StmtPtr stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_shared<Stmt>();
    s->kind = kind;
    s->loc = loc_of(at.offset);
    return s;
  }

  // Statements until one of `ends` opens a block; consumes "{% end-name" and reports it in `which`.
  Body parse_until(std::initializer_list<const char*> ends, std::string& which) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == Tok::Eof) {
        if (ends.size() == 0) return body;
        std::string expected;
        for (const char* e : ends) expected += (expected.empty() ? "'" : " or '") + std::string(e) + "'";
        fail_at(t, "unexpected end of template, expected " + expected);
      }
      if (t.type == Tok::Text) {
        auto s = stmt(Stmt::Kind::Text, t);
        s->text = next().text;
        body.push_back(s);
      } else if (t.type == Tok::VarBegin) {
        auto s = stmt(Stmt::Kind::Output, next());
        s->expr = parse_tuple(true);
        if (peek().type != Tok::VarEnd) fail_at(peek(), "expected end of print statement '}}', got " + describe(peek()));
        next();
        body.push_back(s);
      } else if (t.type == Tok::BlockBegin) {
        const Token& name = peek(1);
        if (name.type == Tok::Name)
          for (const char* e : ends)
            if (name.text == e) {
              next();
              which = next().text;
              return body;
            }
        next();
        body.push_back(parse_statement());
      } else {
        fail_at(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& t = peek();
    if (t.type != Tok::Name) fail_at(t, "expected a statement name after '{%'");
    const std::string& tag = t.text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "generation") {
      auto s = stmt(Stmt::Kind::Generation, next());
      expect_block_end();
      std::string which;
      s->bodies.push_back(parse_until({"endgeneration"}, which));
      expect_block_end();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail_at(t, str("'", tag, "' outside of a loop"));
      auto s = stmt(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, next());
      expect_block_end();
      return s;
    }
    static const std::set<std::string> known = {"call", "filter", "raw", "include", "import", "from", "extends",
                                                "block", "with", "do", "autoescape", "trans"};
    if (known.count(tag)) fail_at(t, str("unsupported tag '", tag, "'"));
    if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else")
      fail_at(t, str("unexpected '", tag, "'"));
    fail_at(t, str("unknown tag '", tag, "'"));
  }

  StmtPtr parse_if() {
    auto s = stmt(Stmt::Kind::If, next());
    while (true) {
      s->conds.push_back(parse_tuple(false));
      expect_block_end();
      std::string which;
      s->bodies.push_back(parse_until({"elif", "else", "endif"}, which));
      if (which == "elif") continue;
      if (which == "else") {
        expect_block_end();
        s->bodies.push_back(parse_until({"endif"}, which));
      }
      expect_block_end();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = is_op("(");
    if (paren) next();
    names.push_back(expect_name());
    while (is_op(",")) {
      next();
      if (peek().type != Tok::Name) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  StmtPtr parse_for() {
    auto s = stmt(Stmt::Kind::For, next());
    s->names = parse_targets();
    if (!is_name("in")) fail_at(peek(), "expected 'in' in for loop, got " + describe(peek()));
    next();
    s->expr = parse_tuple(false);
    if (is_name("if")) {
      next();
      s->cond = parse_expression(true);
    }
    if (is_name("recursive")) fail_at(peek(), "unsupported construct 'recursive' loop");
    expect_block_end();
    std::string which;
    ++loop_depth_;
    s->bodies.push_back(parse_until({"else", "endfor"}, which));
    --loop_depth_;
    if (which == "else") {
      expect_block_end();
      s->bodies.push_back(parse_until({"endfor"}, which));
    } else {
      s->bodies.push_back({});
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set() {
    const Token& at = next();
    std::string first = expect_name();
    if (is_op(".")) {
      next();
      auto s = stmt(Stmt::Kind::Set, at);
      s->names = {first};
      s->attr = expect_name();
      expect_op("=");
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    std::vector<std::string> names = {first};
    while (is_op(",")) {
      next();
      names.push_back(expect_name());
    }
    if (is_op("=")) {
      next();
      auto s = stmt(Stmt::Kind::Set, at);
      s->names = names;
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    if (names.size() != 1) fail_at(peek(), "expected '=' after set targets");
    auto s = stmt(Stmt::Kind::SetBlock, at);
    s->names = names;
    if (is_op("|")) s->filter = parse_filters(nullptr);
    expect_block_end();
    std::string which;
    s->bodies.push_back(parse_until({"endset"}, which));
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro() {
    auto s = stmt(Stmt::Kind::Macro, next());
    s->text = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->names.empty()) expect_op(",");
      if (is_op(")")) break;
      s->names.push_back(expect_name());
      if (is_op("=")) {
        next();
        s->defaults.push_back(parse_expression(true));
      } else {
        s->defaults.push_back(nullptr);
      }
    }
    next();
    expect_block_end();
    std::string which;
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->bodies.push_back(parse_until({"endmacro"}, which));
    loop_depth_ = saved;
    if (peek().type == Tok::Name && peek().text == s->text) next();
    expect_block_end();
    return s;
  }

  // ---- expressions, lowest precedence first (as jinja2's parser) ----

  ExprPtr parse_tuple(bool with_condexpr) {
    const Token& at = peek();
    ExprPtr first = with_condexpr ? parse_expression(true) : parse_or();
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::Tuple, at);
    t->args.push_back(first);
    while (is_op(",")) {
      next();
      if (peek().type == Tok::VarEnd || peek().type == Tok::BlockEnd || is_op(")")) break;
      t->args.push_back(with_condexpr ? parse_expression(true) : parse_or());
    }
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    if (!with_condexpr) return parse_or();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = node(Expr::Kind::Cond, next());
      c->args.push_back(parse_or());
      c->args.insert(c->args.begin() + 1, e);
      if (is_name("else")) {
        next();
        c->args.push_back(parse_expression(true));
      } else {
        c->args.push_back(nullptr);
      }
      e = c;
    }
    return e;
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr l, ExprPtr r) {
    auto b = node(Expr::Kind::Binary, at);
    b->name = std::move(op);
    b->args = {std::move(l), std::move(r)};
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      const Token& at = next();
      l = binary(at, "or", l, parse_and());
    }
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      const Token& at = next();
      l = binary(at, "and", l, parse_not());
    }
    return l;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto u = node(Expr::Kind::Unary, next());
      u->name = "not";
      u->args.push_back(parse_not());
      return u;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr l = parse_math1();
    while (true) {
      const Token& t = peek();
      if (t.type == Tok::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == ">" ||
                                t.text == "<=" || t.text == ">=")) {
        next();
        l = binary(t, t.text, l, parse_math1());
      } else if (is_name("in")) {
        next();
        l = binary(t, "in", l, parse_math1());
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        l = binary(t, "notin", l, parse_math1());
      } else {
        return l;
      }
    }
  }
  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = next();
      l = binary(at, at.text, l, parse_concat());
    }
    return l;
  }
  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const Token& at = next();
      l = binary(at, "~", l, parse_math2());
    }
    return l;
  }
  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = next();
      l = binary(at, at.text, l, parse_pow());
    }
    return l;
  }
  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const Token& at = next();
      l = binary(at, "**", l, parse_unary(true));
    }
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::Unary, peek());
      e->name = next().text;
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(e);
    if (with_filter) e = parse_filter_expr(e);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    if (t.type == Tok::Name) {
      next();
      if (t.text == "true" || t.text == "True") return literal(t, Value::boolean(true));
      if (t.text == "false" || t.text == "False") return literal(t, Value::boolean(false));
      if (t.text == "none" || t.text == "None") return literal(t, Value::none());
      auto n = node(Expr::Kind::Name, t);
      n->name = t.text;
      return n;
    }
    if (t.type == Tok::String) {
      std::string s = next().text;
      while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
      return literal(t, Value::string(s));
    }
    if (t.type == Tok::Int) {
      next();
      try {
        return literal(t, Value::integer(std::stoll(t.text)));
      } catch (const std::out_of_range&) {
        fail_at(t, "integer literal out of range");
      }
    }
    if (t.type == Tok::Float) {
      next();
      return literal(t, Value::number(std::stod(t.text)));
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        return node(Expr::Kind::Tuple, t);
      }
      ExprPtr first = parse_expression(true);
      if (is_op(")")) {
        next();
        return first;
      }
      auto tup = node(Expr::Kind::Tuple, t);
      tup->args.push_back(first);
      while (is_op(",")) {
        next();
        if (is_op(")")) break;
        tup->args.push_back(parse_expression(true));
      }
      expect_op(")");
      return tup;
    }
    if (is_op("[")) {
      auto l = node(Expr::Kind::List, next());
      while (!is_op("]")) {
        if (!l->args.empty()) expect_op(",");
        if (is_op("]")) break;
        l->args.push_back(parse_expression(true));
      }
      next();
      return l;
    }
    if (is_op("{")) {
      auto d = node(Expr::Kind::Dict, next());
      while (!is_op("}")) {
        if (!d->args.empty()) expect_op(",");
        if (is_op("}")) break;
        d->args.push_back(parse_expression(true));
        expect_op(":");
        d->args.push_back(parse_expression(true));
      }
      next();
      return d;
    }
    fail_at(t, "unexpected " + describe(t));
  }

  ExprPtr literal(const Token& t, Value v) {
    auto e = node(Expr::Kind::Literal, t);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        next();
        auto g = std::make_shared<Expr>();
        g->kind = Expr::Kind::GetAttr;
        g->loc = e->loc;
        if (peek().type == Tok::Int) {
          g->kind = Expr::Kind::GetItem;
          g->args = {e, literal(peek(), Value::integer(std::stoll(peek().text)))};
          next();
        } else {
          g->name = expect_name();
          g->args = {e};
        }
        e = g;
      } else if (is_op("[")) {
        e = parse_subscript(e);
      } else if (is_op("(")) {
        e = parse_call(e);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr e) {
    const Token& at = next();
    ExprPtr parts[3] = {nullptr, nullptr, nullptr};
    int part = 0;
    bool is_slice = false;
    while (!is_op("]")) {
      if (is_op(":")) {
        next();
        is_slice = true;
        if (++part > 2) fail_at(peek(), "too many ':' in slice");
        continue;
      }
      if (is_op(",")) fail_at(peek(), "unsupported construct: tuple subscript");
      if (parts[part]) fail_at(peek(), "expected ']' in subscript, got " + describe(peek()));
      parts[part] = parse_expression(true);
    }
    next();
    if (!is_slice) {
      if (!parts[0]) fail_at(at, "empty subscript");
      auto g = node(Expr::Kind::GetItem, at);
      g->loc = e->loc;
      g->args = {e, parts[0]};
      return g;
    }
    auto s = node(Expr::Kind::Slice, at);
    s->loc = e->loc;
    s->args = {e, parts[0], parts[1], parts[2]};
    return s;
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail_at(peek(), "unsupported construct: *args / **kwargs in a call");
      if (peek().type == Tok::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        call.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail_at(peek(), "positional argument follows keyword argument");
        call.args.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(Expr::Kind::Call, peek());
    c->loc = callee->loc;
    c->args.push_back(callee);
    parse_call_args(*c);
    return c;
  }

  ExprPtr parse_filters(ExprPtr subject) {
    while (is_op("|")) {
      next();
      const Token& name_tok = peek();
      auto f = node(Expr::Kind::Filter, name_tok);
      f->name = expect_name();
      while (is_op(".")) {
        next();
        f->name += "." + expect_name();
      }
      if (!is_known_filter(f->name)) fail_at(name_tok, str("unsupported filter '", f->name, "'"));
      f->args.push_back(subject);
      if (is_op("(")) parse_call_args(*f);
      subject = f;
    }
    return subject;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filters(e);
      } else if (is_name("is")) {
        next();
        const Token& at = peek();
        auto t = node(Expr::Kind::Test, at);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        const Token& name_tok = peek();
        t->name = expect_name();
        while (is_op(".")) {
          next();
          t->name += "." + expect_name();
        }
        if (!is_known_test(t->name)) fail_at(name_tok, str("unsupported test '", t->name, "'"));
        t->args.push_back(e);
        const Token& n = peek();
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((n.type == Tok::Name || n.type == Tok::String || n.type == Tok::Int || n.type == Tok::Float ||
                    is_op("[") || is_op("{")) &&
                   !(is_name("else") || is_name("or") || is_name("and"))) {
          if (is_name("is")) fail_at(n, "You cannot chain multiple tests with is");
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = t;
      } else if (is_op("(")) {
        e = parse_call(e);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Body parse_template(const std::string& raw_source, const std::string& origin) {
  // As jinja2: every line ending becomes "\n" and one trailing newline is dropped
  // (keep_trailing_newline=False).
  std::string source;
  source.reserve(raw_source.size());
  for (size_t k = 0; k < raw_source.size(); ++k) {
    if (raw_source[k] == '\r') {
      source += '\n';
      if (k + 1 < raw_source.size() && raw_source[k + 1] == '\n') ++k;
    } else {
      source += raw_source[k];
    }
  }
  if (!source.empty() && source.back() == '\n') source.pop_back();
  std::vector<Token> tokens = Lexer(source, origin).run();
  return Parser(std::move(tokens), source, origin).parse_all();
}

}  // namespace tune::text::jinja

// The Jinja interpreter: snippets rendered by transformers' jinja2 environment (the oracle, see
// tests/parity/gen_chat_fixtures.py), plus errors, locations and the generation tag.
#include <gtest/gtest.h>

#include <filesystem>

#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/text/jinja.h"

namespace {

using tune::Json;
using tune::text::jinja::RenderOptions;
using tune::text::jinja::Template;

std::string render(const std::string& source, const Json& vars = Json::object()) {
  return Template::parse(source, "t.jinja").render(vars).text;
}

std::string error_of(const std::string& source, const Json& vars = Json::object()) {
  try {
    Template::parse(source, "t.jinja").render(vars);
  } catch (const tune::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Jinja, SnippetsRenderLikeJinja2) {
  Json snippets = tune::read_json_file(std::filesystem::path(TUNE_SOURCE_DIR) / "tests/data/chat/jinja-snippets.json");
  ASSERT_GE(snippets.size(), 40u);
  for (const Json& s : snippets) {
    const std::string source = s["source"].get<std::string>();
    SCOPED_TRACE(source);
    try {
      EXPECT_EQ(render(source, s["variables"]), s["expected"].get<std::string>());
    } catch (const tune::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(Jinja, TrimAndLstripBlocks) {
  // Hand-worked: the block lines vanish entirely, the variable line keeps its indent.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // no trim after }}
  EXPECT_EQ(render("a {%- if true %} b {% endif -%} c"), "a b c");
}

TEST(Jinja, UndefinedSemantics) {
  EXPECT_EQ(render("[{{ nothing }}][{{ d.nope }}]", {{"d", Json::object()}}), "[][]");
  EXPECT_EQ(error_of("{{ nothing.attr }}"), "t.jinja:1:4: 'nothing' is undefined");
  EXPECT_EQ(error_of("{{ d.a.b }}", {{"d", Json::object()}}), "t.jinja:1:4: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ nothing + 1 }}"), "t.jinja:1:12: 'nothing' is undefined");
}

TEST(Jinja, RuntimeErrorsNameTheLocation) {
  EXPECT_EQ(error_of("ok\n  {{ raise_exception('roles must alternate') }}"), "t.jinja:2:6: roles must alternate");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t.jinja:1:8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 1 < 'a' }}"), "t.jinja:1:6: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(error_of("{% for x in 3 %}{% endfor %}"), "t.jinja:1:13: 'int' object is not iterable");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "t.jinja:1:6: integer division or modulo by zero");
  EXPECT_EQ(error_of("{% set x = [1] %}{% set x.a = 2 %}"), "t.jinja:1:21: cannot assign attribute on non-namespace object 'x'");
}

TEST(Jinja, UnsupportedConstructsNameTheLocation) {
  EXPECT_EQ(error_of("ab\n{% include 'other.jinja' %}"), "t.jinja:2:4: unsupported tag 'include'");
  EXPECT_EQ(error_of("{% call m() %}x{% endcall %}"), "t.jinja:1:4: unsupported tag 'call'");
  EXPECT_EQ(error_of("{{ x | wordwrap }}"), "t.jinja:1:8: unsupported filter 'wordwrap'");
  EXPECT_EQ(error_of("{{ x is escaped }}"), "t.jinja:1:9: unsupported test 'escaped'");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"), "t.jinja:1:15: unsupported construct 'recursive' loop");
  EXPECT_EQ(error_of("{{ f(*args) }}"), "t.jinja:1:6: unsupported construct: *args / **kwargs in a call");
  EXPECT_EQ(error_of("{{ '%s' % 1 }}"), "t.jinja:1:9: unsupported construct: printf-style string formatting with '%'");
}

TEST(Jinja, SyntaxErrorsNameTheLocation) {
  EXPECT_EQ(error_of("{% if x %}\nunclosed"), "t.jinja:2:9: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  EXPECT_EQ(error_of("{{ x "), "t.jinja:1:6: unexpected end of template, expected '}}'");
  EXPECT_EQ(error_of("{% break %}"), "t.jinja:1:4: 'break' outside of a loop");
  EXPECT_EQ(error_of("{% endfor %}"), "t.jinja:1:4: unexpected 'endfor'");
  EXPECT_EQ(error_of("{% frobnicate %}"), "t.jinja:1:4: unknown tag 'frobnicate'");
  EXPECT_EQ(error_of("{{ 'open }}"), "t.jinja:1:4: unterminated string");
  EXPECT_EQ(error_of("{{ a b }}"), "t.jinja:1:6: expected end of print statement '}}', got 'b'");
  EXPECT_EQ(error_of("{# never closed"), "t.jinja:1:1: unterminated comment");
}

TEST(Jinja, GenerationBlocksReportByteSpans) {
  auto r = Template::parse("<u>{% generation %}é{{ x }}{% endgeneration %}</u>{% generation %}{% endgeneration %}", "t")
               .render({{"x", "yz"}});
  EXPECT_EQ(r.text, "<u>éyz</u>");
  ASSERT_EQ(r.generation.size(), 2u);
  EXPECT_EQ(r.generation[0], std::make_pair(size_t{3}, size_t{7}));  // é is two bytes
  EXPECT_EQ(r.generation[1], std::make_pair(size_t{11}, size_t{11}));
}

TEST(Jinja, StrftimeNowUsesTheGivenClock) {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_isdst = -1;
  RenderOptions options;
  options.now = std::mktime(&tm);
  EXPECT_EQ(Template::parse("{{ strftime_now('%d %b %Y') }}", "t").render(Json::object(), options).text, "26 Jul 2024");
}

TEST(Jinja, RunawayMacroRecursionIsAnError) {
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("nested deeper than 256"), std::string::npos);
}

TEST(Jinja, NamespaceRejectsUnderscoreAttributes) {
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns._x = 1 %}").find("underscore"), std::string::npos);
}

}  // namespace

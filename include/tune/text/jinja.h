#pragma once
// A Jinja-subset interpreter for chat templates, written to render byte-identically to jinja2's
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
// as transformers configures it (with its tojson, raise_exception, strftime_now, namespace, and the
// {% generation %} tag). See docs/chat-templates.md for the supported subset.
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tune/core/json.h"

namespace tune::text::jinja {

struct Stmt;

struct RenderOptions {
  // The time strftime_now formats (local time, as Python's datetime.now()); unset: the current time.
  std::optional<std::time_t> now;
};

struct RenderResult {
  std::string text;
  // Byte ranges [begin, end) of text rendered inside {% generation %} blocks (assistant output).
  std::vector<std::pair<size_t, size_t>> generation;
};

class Template {
 public:
  // Parses `source`; syntax errors and unsupported constructs throw tune::Error "origin:line:col: ...".
  static Template parse(std::string source, std::string origin);

  // Renders with the keys of `variables` (a JSON object) as template variables. Errors (including
  // raise_exception) throw tune::Error "origin:line:col: message".
  RenderResult render(const Json& variables, const RenderOptions& options = {}) const;

  const std::string& source() const { return *source_; }
  const std::string& origin() const { return origin_; }

 private:
  std::shared_ptr<const std::string> source_;
  std::string origin_;
  std::shared_ptr<const std::vector<std::shared_ptr<Stmt>>> body_;
};

}  // namespace tune::text::jinja

#pragma once
// Hugging Face chat templates, rendered byte-identically to transformers' apply_chat_template
// (tokenize=False) by our own Jinja-subset interpreter (tune/text/jinja.h). Torch-free.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/json.h"
#include "tune/text/jinja.h"

namespace tune::text {

class ChatTemplate {
 public:
  // Parses a template; syntax errors and unsupported constructs throw tune::Error "origin:line:col: ...".
  static ChatTemplate parse(std::string source, std::string origin);

  // `context` holds what apply_chat_template would receive: "messages" (list of {role, content, ...}),
  // "add_generation_prompt" (default false), "bos_token", "eos_token", "tools" (default None), and extra
  // kwargs such as "enable_thinking". As transformers does, messages carrying reasoning under
  // reasoning_content / thinking / reasoning get it under both "thinking" and "reasoning_content".
  std::string render(const Json& context) const;
  // The same, with the byte ranges of {% generation %} blocks (assistant-only loss masks) and a
  // fixed clock for strftime_now.
  jinja::RenderResult render_with_spans(const Json& context, const jinja::RenderOptions& options = {}) const;

  const std::string& source() const { return template_.source(); }
  const std::string& origin() const { return template_.origin(); }

 private:
  explicit ChatTemplate(jinja::Template t) : template_(std::move(t)) {}
  jinja::Template template_;
};

// The template of a model directory: chat_template.jinja (takes precedence), else tokenizer_config.json
// "chat_template" (a string, or a list of {name, template} from which "default" is taken).
// nullopt when the directory has neither.
std::optional<ChatTemplate> load_chat_template(const std::filesystem::path& dir);

// Templates written for models that ship none: "chatml", "llama3", "llama2", "mistral".
ChatTemplate builtin_chat_template(std::string_view name);
std::vector<std::string> builtin_chat_template_names();

}  // namespace tune::text

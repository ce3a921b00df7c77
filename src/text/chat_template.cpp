#include "tune/text/chat_template.h"

#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune::text {
namespace {

// transformers' names for a message's reasoning; the first non-null one is copied under
// "thinking" (placed first) and "reasoning_content" (placed last).
constexpr const char* kReasoningFields[] = {"reasoning_content", "thinking", "reasoning"};

Json alias_reasoning(const Json& message) {
  if (!message.is_object()) return message;
  const Json* reasoning = nullptr;
  for (const char* key : kReasoningFields) {
    auto it = message.find(key);
    if (it != message.end() && !it->is_null()) {
      reasoning = &*it;
      break;
    }
  }
  if (!reasoning) return message;
  Json out = Json::object();
  out["thinking"] = *reasoning;
  for (const auto& [k, v] : message.items()) out[k] = v;
  out["reasoning_content"] = *reasoning;
  return out;
}

Json prepare_context(const Json& context) {
  if (!context.is_object()) fail("chat template context must be a JSON object");
  Json vars = context;
  auto messages = vars.find("messages");
  if (messages == vars.end() || !messages->is_array()) fail("chat template context needs a \"messages\" list");
  for (auto& m : *messages) {
    if (!m.is_object()) fail("chat messages must be objects, got ", m.dump());
    m = alias_reasoning(m);
  }
  if (!vars.contains("add_generation_prompt")) vars["add_generation_prompt"] = false;
  if (!vars.contains("tools")) vars["tools"] = nullptr;
  if (!vars.contains("documents")) vars["documents"] = nullptr;
  return vars;
}

// Written for tune from the renderings in shared/reference/hf-interop.md section 4.
constexpr const char* kChatml = R"JINJA({%- for message in messages -%}
{{- '<|im_start|>' ~ message.role ~ '\n' ~ message.content ~ '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
)JINJA";

constexpr const char* kLlama3 = R"JINJA({%- for message in messages -%}
{%- if loop.first -%}{{- bos_token -}}{%- endif -%}
{{- '<|start_header_id|>' ~ message.role ~ '<|end_header_id|>\n\n' ~ (message.content | trim) ~ '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}
)JINJA";

constexpr const char* kLlama2 = R"JINJA({%- set sys_text = messages[0].content if messages and messages[0].role == 'system' else none -%}
{%- set turns = messages[1:] if sys_text is not none else messages -%}
{%- for message in turns -%}
  {%- if (message.role == 'user') != (loop.index0 % 2 == 0) -%}
    {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
  {%- endif -%}
  {%- if message.role == 'user' -%}
    {%- set text = message.content -%}
    {%- if loop.first and sys_text is not none -%}
      {%- set text = '<<SYS>>\n' ~ sys_text ~ '\n<</SYS>>\n\n' ~ text -%}
    {%- endif -%}
    {{- bos_token ~ '[INST] ' ~ (text | trim) ~ ' [/INST]' -}}
  {%- else -%}
    {{- ' ' ~ (message.content | trim) ~ ' ' ~ eos_token -}}
  {%- endif -%}
{%- endfor -%}
)JINJA";

constexpr const char* kMistral = R"JINJA({{- bos_token -}}
{%- for message in messages -%}
  {%- if message.role not in ['user', 'assistant'] -%}
    {{- raise_exception('Only user and assistant roles are supported!') -}}
  {%- elif (message.role == 'user') != (loop.index0 % 2 == 0) -%}
    {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
  {%- elif message.role == 'user' -%}
    {{- '[INST] ' ~ message.content ~ ' [/INST]' -}}
  {%- else -%}
    {{- message.content ~ eos_token -}}
  {%- endif -%}
{%- endfor -%}
)JINJA";

}  // namespace

ChatTemplate ChatTemplate::parse(std::string source, std::string origin) {
  return ChatTemplate(jinja::Template::parse(std::move(source), std::move(origin)));
}

std::string ChatTemplate::render(const Json& context) const { return render_with_spans(context).text; }

jinja::RenderResult ChatTemplate::render_with_spans(const Json& context, const jinja::RenderOptions& options) const {
  return template_.render(prepare_context(context), options);
}

std::optional<ChatTemplate> load_chat_template(const std::filesystem::path& dir) {
  const auto jinja_file = dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_file)) return ChatTemplate::parse(fs::read_file(jinja_file), jinja_file.string());
  const auto config_file = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config_file)) return std::nullopt;
  Json config = read_json_file(config_file);
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  const std::string origin = config_file.string() + ":chat_template";
  if (it->is_string()) return ChatTemplate::parse(it->get<std::string>(), origin);
  if (it->is_array()) {
    for (const auto& entry : *it)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template"))
        return ChatTemplate::parse(entry["template"].get<std::string>(), origin + "[default]");
    fail(config_file.string(), ": chat_template is a list without a \"default\" entry");
  }
  fail(config_file.string(), ": chat_template must be a string or a list of {name, template}");
}

ChatTemplate builtin_chat_template(std::string_view name) {
  const char* source = name == "chatml" ? kChatml : name == "llama3" ? kLlama3 : name == "llama2" ? kLlama2
                     : name == "mistral" ? kMistral : nullptr;
  if (!source) usage_fail("unknown built-in chat template '", name, "' (known: chatml, llama3, llama2, mistral)");
  return ChatTemplate::parse(source, str("builtin:", name));
}

std::vector<std::string> builtin_chat_template_names() { return {"chatml", "llama3", "llama2", "mistral"}; }

}  // namespace tune::text

#include "tune/cli/model_files.h"

#include "tune/core/error.h"

namespace tune::cli {

std::filesystem::path model_dir_option(const std::string& source, algo::ModelDirNeeds needs, const std::string& option) {
  return algo::resolve_model_dir(source, option, needs);
}

std::unique_ptr<text::Tokenizer> load_tokenizer(const std::filesystem::path& model_dir) {
  if (!std::filesystem::exists(model_dir)) usage_fail("model directory ", model_dir.string(), " does not exist");
  return text::Tokenizer::load(model_dir);
}

text::ChatTemplate load_template(const std::filesystem::path& model_dir, const std::string& name) {
  if (!name.empty()) return text::builtin_chat_template(name);
  if (auto t = text::load_chat_template(model_dir)) return *t;
  usage_fail(model_dir.string(), " has no chat template (tokenizer_config.json chat_template or chat_template.jinja); "
             "choose a built-in with --template (", join(text::builtin_chat_template_names(), ", "), ")");
}

}  // namespace tune::cli

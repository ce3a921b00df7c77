#pragma once
// What several commands need from a model directory besides the weights: the directory itself
// (a built-in resolved), the tokenizer and the chat template (the model's own, or a named
// built-in), with errors that say what to pass.
#include <filesystem>
#include <memory>
#include <string>

#include "tune/algo/model_source.h"
#include "tune/text/chat_template.h"
#include "tune/text/tokenizer.h"

namespace tune::cli {

// The directory a --model option names (builtin:tiny materialised), checked for `needs`: a missing
// directory or file is a usage error that says which.
std::filesystem::path model_dir_option(const std::string& source, algo::ModelDirNeeds needs = {},
                                       const std::string& option = "--model");

std::unique_ptr<text::Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);
// `name` empty: the model's own template, error when it has none; else a built-in by name.
text::ChatTemplate load_template(const std::filesystem::path& model_dir, const std::string& name);

}  // namespace tune::cli

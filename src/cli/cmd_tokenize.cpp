// tune tokenize: JSON lines in, JSON lines out. A debugging tool for users and the hook of the
// tokenizer and chat-template exactness tests.
//   {"text": "..."}                                   -> {"ids": [...]}
//   {"messages": [...], "add_generation_prompt": true} -> rendered with the chat template, then ids
//   --render: {"text": rendered} instead of ids;  --decode: {"ids": [...]} -> {"text": ...}
#include <fstream>
#include <iostream>

#include "tune/cli/command.h"
#include "tune/cli/model_files.h"
#include "tune/core/error.h"
#include "tune/text/chat_mask.h"

namespace tune::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string input;
  std::string template_name;
  bool render = false;
  bool decode = false;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

int run_tokenize(const TokenizeArgs& a) {
  // A tokenizer file is taken as it is; a directory (or builtin:tiny) needs no weights.
  const std::filesystem::path model_dir =
      std::filesystem::is_regular_file(a.model) ? std::filesystem::path(a.model) : model_dir_option(a.model, {.config = false});
  auto tokenizer = load_tokenizer(model_dir);
  std::ifstream file;
  if (!a.input.empty()) {
    file.open(a.input);
    if (!file) usage_fail("cannot open --input ", a.input);
  }
  std::istream& in = a.input.empty() ? std::cin : file;
  const std::string origin = a.input.empty() ? "<stdin>" : a.input;

  std::optional<text::ChatTemplate> chat;  // loaded on the first chat record
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const std::exception&) {
      fail(origin, ":", line_no, ": not a JSON object");
    }
    if (!rec.is_object()) fail(origin, ":", line_no, ": not a JSON object");
    Json out;
    if (a.decode) {
      if (!rec.contains("ids") || !rec["ids"].is_array()) fail(origin, ":", line_no, ": expected {\"ids\": [...]}");
      std::vector<int32_t> ids;
      for (const auto& v : rec["ids"]) {
        if (!v.is_number_integer()) fail(origin, ":", line_no, ": ids must be integers");
        ids.push_back(v.get<int32_t>());
      }
      out = Json{{"text", tokenizer->decode(ids, a.skip_special_tokens)}};
    } else {
      std::string text_in;
      bool add_special = a.add_special_tokens;
      if (rec.contains("messages")) {
        if (!chat) chat = load_template(model_dir, a.template_name);
        Json extra = rec;
        extra.erase("messages");
        extra.erase("add_generation_prompt");
        bool gen = rec.value("add_generation_prompt", false);
        try {
          text_in = text::make_renderer(*chat, *tokenizer, extra)(rec["messages"], gen);
        } catch (const Error& e) {
          fail(origin, ":", line_no, ": ", e.what());
        }
        add_special = false;  // the template already carries BOS and special tokens
      } else if (rec.contains("text") && rec["text"].is_string()) {
        text_in = rec["text"].get<std::string>();
      } else {
        fail(origin, ":", line_no, ": expected a \"text\" string or a \"messages\" list");
      }
      if (a.render) {
        out = Json{{"text", text_in}};
      } else {
        out = Json{{"ids", tokenizer->encode(text_in, add_special)}};
      }
    }
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* sub = app.add_subcommand("tokenize", "encode/decode JSON lines with a model's tokenizer and chat template");
  sub->add_option("--model,-m", args->model, "model or tokenizer directory")->required();
  sub->add_option("--input,-i", args->input, "JSONL file (default: stdin)");
  sub->add_option("--template", args->template_name, "built-in chat template instead of the model's own");
  sub->add_flag("--render", args->render, "write the rendered chat text instead of ids");
  sub->add_flag("--decode", args->decode, "read {\"ids\": [...]} lines and write their text");
  sub->add_flag("--add-special-tokens", args->add_special_tokens, "apply the tokenizer's BOS/EOS post-processing to plain text");
  sub->add_flag("--skip-special-tokens", args->skip_special_tokens, "drop special tokens when decoding");
  return {sub, [args] { return run_tokenize(*args); }};
}

}  // namespace tune::cli

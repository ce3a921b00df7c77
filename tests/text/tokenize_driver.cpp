// Test driver for the tokenizer parity harness (tests/parity/test_tokenizers.py). Not a gtest:
// reads JSON lines on stdin and answers one JSON line per input line.
//   tune_tokenize_driver TOKENIZER [--add-special-tokens]       {"text": ...}  -> {"ids": [...]}
//   tune_tokenize_driver TOKENIZER --decode [--skip-special]    {"ids": [...]} -> {"text": ...}
//   tune_tokenize_driver TOKENIZER --bench FILE [--repeat N]    encode FILE's text, print MB/s
//   tune_tokenize_driver --tiny DIR                              write the tiny tokenizer files
// TOKENIZER is a model directory, a tokenizer.json or a tokenizer.model.
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"

namespace {

int run(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--tiny") == 0) {
    std::filesystem::path dir = argv[2];
    tune::fs::ensure_directory(dir);
    tune::write_json_file(dir / "tokenizer.json", tune::text::tiny_tokenizer_json());
    tune::write_json_file(dir / "tokenizer_config.json", tune::text::tiny_tokenizer_config_json());
    return 0;
  }
  if (argc < 2) {
    std::cerr << "usage: tune_tokenize_driver TOKENIZER [--add-special-tokens] [--decode [--skip-special]] "
                 "[--bench FILE [--repeat N]]\n";
    return 2;
  }
  bool add_special = false, decode = false, skip_special = false;
  std::string bench_file;
  int repeat = 1;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--add-special-tokens") add_special = true;
    else if (arg == "--decode") decode = true;
    else if (arg == "--skip-special") skip_special = true;
    else if (arg == "--bench" && i + 1 < argc) bench_file = argv[++i];
    else if (arg == "--repeat" && i + 1 < argc) repeat = std::stoi(argv[++i]);
    else throw tune::UsageError("unknown argument: " + arg);
  }
  auto tokenizer = tune::text::Tokenizer::load(argv[1]);
  if (!bench_file.empty()) {
    // The file is JSON lines {"text": ...}; each document is encoded separately.
    std::vector<std::string> docs;
    size_t bytes = 0;
    for (const std::string& line : tune::split(tune::fs::read_file(bench_file), '\n')) {
      if (line.empty()) continue;
      docs.push_back(tune::Json::parse(line).at("text").get<std::string>());
      bytes += docs.back().size();
    }
    size_t tokens = 0;
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      tokens = 0;
      for (const auto& d : docs) tokens += tokenizer->encode(d).size();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
    }
    tune::Json out = {{"bytes", bytes}, {"tokens", tokens}, {"seconds", best}, {"mb_per_s", bytes / best / 1e6}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    tune::Json in = tune::Json::parse(line);
    tune::Json out;
    if (decode) {
      auto ids = in.at("ids").get<std::vector<int32_t>>();
      out["text"] = tokenizer->decode(ids, skip_special);
    } else {
      out["ids"] = tokenizer->encode(in.at("text").get<std::string>(), add_special);
    }
    std::cout << out.dump(-1, ' ', false, tune::Json::error_handler_t::replace) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const tune::UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

#include "tune/cli/app.h"

#include <torch/torch.h>

#include <iostream>

#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/version.h"

namespace tune::cli {
namespace {

std::string version_line() {
  return str("tune ", TUNE_VERSION, " (LibTorch ", TORCH_VERSION, ", CUDA ",
             torch::cuda::is_available() ? "available" : "not available", ")");
}

int run(int argc, char** argv) {
  CLI::App app{"tune: native post-training for Hugging Face language models (SFT, LoRA, reward models, DPO, GRPO, PPO)"};
  app.name("tune");
  app.require_subcommand(1);
  app.set_version_flag("--version", version_line());
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "debug logging");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");

  std::vector<Command> commands;
  commands.push_back(add_init_model(app));
  commands.push_back(add_generate(app));
  commands.push_back(add_tokenize(app));
  commands.push_back(add_data(app));
  commands.push_back(add_merge(app));
  commands.push_back(add_sft(app));
  commands.push_back(add_rm(app));
  commands.push_back(add_dpo(app));
  commands.push_back(add_score(app));
  commands.push_back(add_ppo(app));
  commands.push_back(add_grpo(app));
  commands.push_back(add_probe(app));
  commands.push_back(add_sample(app));
  commands.push_back(add_import(app));
  commands.push_back(add_export(app));
  commands.push_back(add_report(app));
  commands.push_back(add_doctor(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0 in CLI11.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (verbose) log::set_level(log::Level::debug);
  if (quiet) log::set_level(log::Level::warn);
  for (auto& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "tune: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch's what() carries a C++ backtrace; the user needs the message only.
    std::string msg = e.what_without_backtrace();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::cerr << "tune: error: " << msg << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tune: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tune::cli

#pragma once
// How subcommands plug into the CLI: each add_xxx() registers a CLI11 subcommand with its options
// and returns the function that runs it once parsing is done (its return value is the exit code).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tune/cli/config_loader.h"

namespace tune::cli {

using RunFn = std::function<int()>;

struct Command {
  CLI::App* app = nullptr;
  RunFn run;
};

// Options every training command takes. Dedicated flags are aliases of config keys and win over
// the file and key=value overrides.
struct TrainArgs {
  std::string config_file;
  std::vector<std::string> overrides;  // key=value
  std::string output_dir;
  int64_t max_steps = -1;
  int64_t seed = -1;
  std::string resume;  // --resume DIR; --resume alone means "auto" (the run's latest checkpoint)
  CLI::Option* resume_option = nullptr;
  bool dry_run = false;
  bool overwrite = false;  // --overwrite: replace an earlier run in the output directory

  void add_to(CLI::App* sub);
  // defaults < file < key=value < flags. The flag keys are the same in every training config.
  ConfigTree tree() const;
};

// Commands (one file each in src/cli/).
Command add_init_model(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_merge(CLI::App& app);
Command add_data(CLI::App& app);
Command add_sft(CLI::App& app);
Command add_rm(CLI::App& app);
Command add_dpo(CLI::App& app);
Command add_score(CLI::App& app);
Command add_ppo(CLI::App& app);
Command add_grpo(CLI::App& app);
Command add_probe(CLI::App& app);
Command add_sample(CLI::App& app);
Command add_import(CLI::App& app);
Command add_export(CLI::App& app);
Command add_report(CLI::App& app);
Command add_doctor(CLI::App& app);
// The resolved configuration of a command, as a table on stderr.
void print_resolved(const std::string& command, const Json& resolved);

// Data parallelism: joins the job the launcher started this process in (torchrun, Slurm, mpirun;
// tune/dist/launch.h), before anything is loaded. Ranks other than 0 log warnings and errors only.
void join_world();
// Registers a command whose issue has not landed yet: it says so in one line and exits 2.
Command add_not_built(CLI::App& app, const std::string& name, const std::string& summary);

}  // namespace tune::cli

#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/dist/connect.h"

namespace tune::cli {

void TrainArgs::add_to(CLI::App* sub) {
  sub->add_option("--config,-c", config_file, "YAML configuration file")->check(CLI::ExistingFile);
  sub->add_option("overrides", overrides, "key=value overrides (nested keys as a.b=1)");
  sub->add_option("--output-dir,-o", output_dir, "run directory (alias of output_dir)");
  sub->add_option("--max-steps", max_steps, "stop after N optimizer steps (alias of train.max_steps)");
  sub->add_option("--seed", seed, "random seed (alias of seed)");
  resume_option = sub->add_option("--resume", resume,
                                  "continue from a checkpoint directory, or the run's latest when no DIR is given")
                      ->expected(0, 1);
  sub->add_flag("--overwrite", overwrite, "replace an earlier run in the output directory (alias of overwrite)");
  sub->add_flag("--dry-run", dry_run, "validate config, data and model, print the plan, train nothing");
}

ConfigTree TrainArgs::tree() const {
  std::vector<std::pair<std::string, Json>> flags;
  if (!output_dir.empty()) flags.emplace_back("output_dir", output_dir);
  if (max_steps >= 0) flags.emplace_back("train.max_steps", max_steps);
  if (seed >= 0) flags.emplace_back("seed", seed);
  if (overwrite) flags.emplace_back("overwrite", true);
  if (resume_option && resume_option->count() > 0) flags.emplace_back("resume", resume.empty() ? "auto" : resume);
  std::optional<std::filesystem::path> file;
  if (!config_file.empty()) file = config_file;
  return load_config_tree(file, overrides, flags);
}

void join_world() {
  const dist::LaunchEnv env = dist::launch_env();
  if (env.world_size == 1) return;
  if (env.rank != 0) log::set_level(log::Level::warn);
  train::set_world(dist::connect(env));
}

}  // namespace tune::cli

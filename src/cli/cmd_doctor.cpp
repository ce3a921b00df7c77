// tune doctor RUN_DIR            the symptoms of a finished or running run (evidence, cause, remedy)
// tune doctor --config x.yaml    config smells before a run (trainer told by its sections, or --trainer)
// tune doctor --rules            the symptom table
// The rules are torch-free (tune/report); this file parses the command line and, for --config,
// resolves the YAML into the trainer's typed config (defaults included), as the trainer would.
#include <iostream>

#include "tune/algo/dpo.h"
#include "tune/algo/grpo.h"
#include "tune/algo/ppo.h"
#include "tune/algo/rm.h"
#include "tune/algo/sft.h"
#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/report/doctor.h"

namespace tune::cli {
namespace {

// The trainer a config file is for: its algorithm section, else sft.
std::string trainer_of_tree(const Json& tree) {
  for (const char* algo : {"dpo", "grpo", "ppo", "rm"})
    if (tree.contains(algo)) return algo;
  return "sft";
}

Json resolved_config(const ConfigTree& tree, const std::string& trainer) {
  if (trainer == "sft") return config::to_json(resolve<algo::SftConfig>(tree));
  if (trainer == "rm") return config::to_json(resolve<algo::RmConfig>(tree));
  if (trainer == "dpo") return config::to_json(resolve<algo::DpoConfig>(tree));
  if (trainer == "grpo") return config::to_json(resolve<algo::GrpoConfig>(tree));
  if (trainer == "ppo") return config::to_json(resolve<algo::PpoConfig>(tree));
  usage_fail("--trainer must be sft, rm, dpo, grpo or ppo (got ", trainer, ")");
}

}  // namespace

Command add_doctor(CLI::App& app) {
  struct Args {
    std::vector<std::string> positional;  // RUN_DIR, or key=value overrides with --config
    std::string config_file;
    std::string trainer;
    bool rules = false;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("doctor", "diagnose a run (symptoms with evidence, cause, remedy) or a config before a run");
  sub->add_option("target", args->positional, "RUN_DIR, or key=value overrides of --config");
  sub->add_option("--config,-c", args->config_file, "check this YAML configuration instead of a run")->check(CLI::ExistingFile);
  sub->add_option("--trainer", args->trainer, "sft | rm | dpo | grpo | ppo (default: told by the config's sections)");
  sub->add_flag("--rules", args->rules, "print the symptom table and exit");
  return {sub, [args] {
            if (args->rules) {
              std::cout << report::format_rules();
              return 0;
            }
            if (!args->config_file.empty()) {
              for (const auto& p : args->positional)
                if (p.find('=') == std::string::npos)
                  usage_fail("doctor: with --config, the other arguments are key=value overrides (got ", p, ")");
              ConfigTree tree = load_config_tree(std::filesystem::path(args->config_file), args->positional, {});
              const std::string trainer = args->trainer.empty() ? trainer_of_tree(tree.tree) : args->trainer;
              const Json config = resolved_config(tree, trainer);
              const report::ConfigContext ctx = report::config_context(config, trainer, ".");
              std::cout << report::format_config_diagnosis(args->config_file, trainer, ctx,
                                                           report::diagnose_config(config, trainer, ctx));
              return 0;
            }
            if (args->positional.size() != 1)
              usage_fail("doctor: give one RUN_DIR, or --config FILE, or --rules");
            const report::RunData run = report::read_run(args->positional[0]);
            std::cout << report::format_run_diagnosis(run, report::diagnose_run(run));
            return 0;
          }};
}

}  // namespace tune::cli

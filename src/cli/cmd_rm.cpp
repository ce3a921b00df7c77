#include "tune/algo/rm.h"
#include "tune/cli/command.h"

namespace tune::cli {

Command add_rm(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("rm", "train a reward model (Bradley-Terry) on preference pairs, full or LoRA");
  args->add_to(sub);
  return {sub, [args] {
            join_world();
            auto cfg = resolve<algo::RmConfig>(args->tree());
            print_resolved("rm", config::to_json(cfg));
            algo::run_rm(cfg, args->dry_run);
            return 0;
          }};
}

}  // namespace tune::cli

#include "tune/algo/grpo.h"
#include "tune/cli/command.h"

namespace tune::cli {

Command add_grpo(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("grpo", "GRPO and relatives (Dr. GRPO, DAPO, RLOO, GSPO, CISPO) from rule, program or "
                                         "reward-model rewards, full or LoRA");
  args->add_to(sub);
  return {sub, [args] {
            join_world();
            auto cfg = resolve<algo::GrpoConfig>(args->tree());
            print_resolved("grpo", config::to_json(cfg));
            algo::run_grpo(cfg, args->dry_run);
            return 0;
          }};
}

}  // namespace tune::cli

#include "tune/algo/ppo.h"
#include "tune/cli/command.h"

namespace tune::cli {

Command add_ppo(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("ppo", "PPO with a reward model, a critic and KL control (or critic-free REINFORCE++ / "
                                        "RLOO), full or LoRA");
  args->add_to(sub);
  return {sub, [args] {
            join_world();
            auto cfg = resolve<algo::PpoConfig>(args->tree());
            print_resolved("ppo", config::to_json(cfg));
            algo::run_ppo(cfg, args->dry_run);
            return 0;
          }};
}

}  // namespace tune::cli

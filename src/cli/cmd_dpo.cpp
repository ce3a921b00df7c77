#include "tune/algo/dpo.h"
#include "tune/cli/command.h"

namespace tune::cli {

Command add_dpo(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("dpo", "direct preference optimisation (DPO, IPO, hinge, cDPO/robust, SimPO), full or LoRA");
  args->add_to(sub);
  return {sub, [args] {
            join_world();
            auto cfg = resolve<algo::DpoConfig>(args->tree());
            print_resolved("dpo", config::to_json(cfg));
            algo::run_dpo(cfg, args->dry_run);
            return 0;
          }};
}

}  // namespace tune::cli

#include "tune/algo/sft.h"
#include "tune/cli/command.h"
#include "tune/core/log.h"

namespace tune::cli {

// Prints the resolved configuration as a table: the first thing a user checks when a run misbehaves.
void print_resolved(const std::string& command, const Json& resolved) {
  log::info("tune ", command, " configuration:\n", config::format_table(resolved));
}

Command add_sft(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* sub = app.add_subcommand("sft", "supervised fine-tuning (full or LoRA) on chat, instruction or text data");
  args->add_to(sub);
  return {sub, [args] {
            join_world();
            auto cfg = resolve<algo::SftConfig>(args->tree());
            print_resolved("sft", config::to_json(cfg));
            algo::run_sft(cfg, args->dry_run);
            return 0;
          }};
}

}  // namespace tune::cli

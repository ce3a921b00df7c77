#include "tune/cli/command.h"
#include "tune/cli/model_files.h"
#include "tune/core/log.h"
#include "tune/lora/peft.h"

namespace tune::cli {

Command add_merge(CLI::App& app) {
  struct Args {
    std::string model, adapter, out;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("merge", "merge a PEFT LoRA adapter into its base and write a Hugging Face model");
  sub->add_option("--model,-m", a->model, "base model directory")->required();
  sub->add_option("--adapter,-a", a->adapter, "PEFT adapter directory")->required();
  sub->add_option("--out,-o", a->out, "output directory (written atomically)")->required();
  return {sub, [a] {
            lora::merge_adapter_to_dir(model_dir_option(a->model, {.tokenizer = false}), a->adapter, a->out);
            log::info("wrote merged model to ", a->out);
            return 0;
          }};
}

}  // namespace tune::cli

// tune init-model: a seeded random model in Hugging Face layout, with the built-in tiny tokenizer
// (a byte-level BPE with ChatML special tokens and chat template). For tests, CI, the README's
// first run and the learning proofs; the real-shape presets serve benchmarks. `model.path:
// builtin:tiny` is the same model (seed 0), written once into the cache (algo/model_source.h).
#include "tune/algo/model_source.h"
#include "tune/cli/command.h"
#include "tune/core/log.h"
#include "tune/model/config.h"

namespace tune::cli {

Command add_init_model(CLI::App& app) {
  struct Args {
    algo::RandomModelOptions model;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("init-model", "write a seeded random model in Hugging Face layout (tests, benchmarks)");
  sub->add_option("--preset", args->model.preset, "tiny | llama-100m | qwen2.5-0.5b | llama-3.2-1b")
      ->check(CLI::IsMember(model::preset_names()))
      ->capture_default_str();
  sub->add_option("--out,-o", args->out, "output directory")->required();
  sub->add_option("--seed", args->model.seed, "random seed")->capture_default_str();
  sub->add_option("--dtype", args->model.dtype, "float32 | bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  return {sub, [args] {
            auto config = algo::write_random_model(args->model, args->out);
            log::info("wrote ", args->out, ": preset ", args->model.preset, ", ",
                      human_count(static_cast<double>(config.num_parameters())), " parameters, vocab ", config.vocab_size,
                      ", seed ", args->model.seed);
            return 0;
          }};
}

}  // namespace tune::cli

// tune init-model: a seeded random model in Hugging Face layout, with the built-in tiny tokenizer
// (a byte-level BPE with ChatML special tokens and chat template). For tests, CI, the README's
// first run and the learning proofs; the real-shape presets serve benchmarks.
#include "tune/cli/command.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/model/causal_lm.h"
#include "tune/model/config.h"
#include "tune/model/weights.h"
#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"

namespace tune::cli {
namespace {

struct InitModelArgs {
  std::string preset = "tiny";
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "float32";
};

int run_init_model(const InitModelArgs& a) {
  Json tok_json = text::tiny_tokenizer_json();
  Json tok_config = text::tiny_tokenizer_config_json();
  auto tokenizer = text::Tokenizer::from_json(tok_json, "built-in tiny tokenizer");
  tokenizer->apply_config(tok_config, nullptr, "built-in tiny tokenizer_config");

  // Real-shape presets keep their real vocabulary size; the tiny one matches the tiny tokenizer.
  const bool tiny = a.preset == "tiny";
  model::ModelConfig config = model::preset_config(a.preset, tiny ? tokenizer->vocab_size() : 0);
  const auto& sp = tokenizer->special();
  if (sp.eos) config.eos_token_ids = {*sp.eos};
  if (sp.pad) config.pad_token_id = *sp.pad;
  if (sp.bos) config.bos_token_id = *sp.bos;

  torch::ScalarType dtype = a.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  auto model = std::make_shared<model::CausalLM>(config);
  model::init_random(*model, a.seed);

  // Tokenizer files first into a staging dir, then the model save copies them beside the weights.
  std::filesystem::path out = std::filesystem::path(a.out).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/" -> "dir"
  if (out.has_parent_path()) fs::ensure_directory(out.parent_path());
  auto staging = fs::temp_sibling(out);
  fs::ensure_directory(staging);
  write_json_file(staging / "tokenizer.json", tok_json);
  write_json_file(staging / "tokenizer_config.json", tok_config);
  Json gen = {{"eos_token_id", sp.eos ? Json(*sp.eos) : Json(nullptr)}, {"pad_token_id", sp.pad ? Json(*sp.pad) : Json(nullptr)},
              {"do_sample", false}};
  write_json_file(staging / "generation_config.json", gen);
  model::SaveOptions options;
  options.dtype = dtype;
  options.copy_files_from = staging;
  try {
    model::save_pretrained(*model, out, options);
  } catch (...) {
    std::filesystem::remove_all(staging);
    throw;
  }
  std::filesystem::remove_all(staging);
  log::info("wrote ", out.string(), ": preset ", a.preset, ", ", human_count(static_cast<double>(config.num_parameters())),
            " parameters, vocab ", config.vocab_size, ", seed ", a.seed);
  return 0;
}

}  // namespace

Command add_init_model(CLI::App& app) {
  auto args = std::make_shared<InitModelArgs>();
  auto* sub = app.add_subcommand("init-model", "write a seeded random model in Hugging Face layout (tests, benchmarks)");
  sub->add_option("--preset", args->preset, "tiny | llama-100m | qwen2.5-0.5b | llama-3.2-1b")
      ->check(CLI::IsMember(model::preset_names()))
      ->capture_default_str();
  sub->add_option("--out,-o", args->out, "output directory")->required();
  sub->add_option("--seed", args->seed, "random seed")->capture_default_str();
  sub->add_option("--dtype", args->dtype, "float32 | bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
  return {sub, [args] { return run_init_model(*args); }};
}

}  // namespace tune::cli

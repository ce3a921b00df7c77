#pragma once
// Where a model comes from, as configs (model.path) and command lines (--model) name it:
//   a Hugging Face model directory, or
//   builtin:tiny  the seeded random model of `tune init-model --preset tiny --seed 0`, written once
//                 into the cache directory and reused (docs/presets.md).
// Every command opens models through resolve_model_dir, so a missing directory or file is reported
// as such ("model directory X does not exist", "X has no config.json").
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tune/algo/sections.h"
#include "tune/model/config.h"

namespace tune::algo {

constexpr const char* kBuiltinPrefix = "builtin:";
bool is_builtin_model(std::string_view source);
std::vector<std::string> builtin_model_names();

// $TUNE_CACHE_DIR, else $XDG_CACHE_HOME/tune, else $HOME/.cache/tune.
std::filesystem::path cache_dir();

// `tune init-model`: a seeded random model of a preset (model::preset_names()) with the built-in
// tiny tokenizer, in Hugging Face layout, written to `out` (replaced atomically). Returns its config.
struct RandomModelOptions {
  std::string preset = "tiny";
  uint64_t seed = 0;
  std::string dtype = "float32";  // float32 | bfloat16
};
model::ModelConfig write_random_model(const RandomModelOptions& options, const std::filesystem::path& out);

// The directory of a built-in model, materialised on first use: written to a temporary sibling and
// renamed into place, so a second process racing for it uses whichever copy landed first. Its name
// carries a hash of tune's version and the model's config, tokenizer and seed.
std::filesystem::path builtin_model_dir(const std::string& source);

struct ModelDirNeeds {
  bool config = true;     // config.json (weights to load)
  bool tokenizer = true;  // tokenizer.json or tokenizer.model
};
// The directory `source` names (a built-in materialised), checked for what the caller needs; a
// problem is a UsageError led by `what` (the key or option that named it). `made_by`, when set, is
// the command that writes the directory (another preset's run): the error says to run it first.
std::filesystem::path resolve_model_dir(const std::string& source, const std::string& what, ModelDirNeeds needs = {},
                                        const std::string& made_by = "");
// The same for a config's model section (what = "model.path", made_by = model.made_by).
std::filesystem::path model_dir(const ModelSection& model);

}  // namespace tune::algo

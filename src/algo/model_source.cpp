#include "tune/algo/model_source.h"

#include <algorithm>
#include <cstdlib>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/core/log.h"
#include "tune/model/causal_lm.h"
#include "tune/model/config.h"
#include "tune/model/weights.h"
#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"
#include "tune/version.h"

namespace tune::algo {

namespace stdfs = std::filesystem;

namespace {

// What a random model is made of besides its weights: the config and the tokenizer files.
struct RandomModelFiles {
  model::ModelConfig config;
  Json tokenizer, tokenizer_config, generation_config;
};

RandomModelFiles random_model_files(const std::string& preset) {
  RandomModelFiles f;
  f.tokenizer = text::tiny_tokenizer_json();
  f.tokenizer_config = text::tiny_tokenizer_config_json();
  auto tokenizer = text::Tokenizer::from_json(f.tokenizer, "built-in tiny tokenizer");
  tokenizer->apply_config(f.tokenizer_config, nullptr, "built-in tiny tokenizer_config");
  // Real-shape presets keep their real vocabulary size; the tiny one matches the tiny tokenizer.
  f.config = model::preset_config(preset, preset == "tiny" ? tokenizer->vocab_size() : 0);
  const auto& sp = tokenizer->special();
  if (sp.eos) f.config.eos_token_ids = {*sp.eos};
  if (sp.pad) f.config.pad_token_id = *sp.pad;
  if (sp.bos) f.config.bos_token_id = *sp.bos;
  f.generation_config = {{"eos_token_id", sp.eos ? Json(*sp.eos) : Json(nullptr)},
                         {"pad_token_id", sp.pad ? Json(*sp.pad) : Json(nullptr)},
                         {"do_sample", false}};
  return f;
}

// The built-ins: name -> (preset, seed). builtin:tiny is what the tests and proofs make with
// `tune init-model --preset tiny --seed 0`.
struct Builtin {
  std::string name, preset;
  uint64_t seed;
};
const std::vector<Builtin>& builtins() {
  static const std::vector<Builtin> all = {{"tiny", "tiny", 0}};
  return all;
}

bool usable_model_dir(const stdfs::path& dir) {
  return stdfs::is_regular_file(dir / "config.json") && stdfs::is_regular_file(dir / "tokenizer.json");
}

}  // namespace

bool is_builtin_model(std::string_view source) { return source.rfind(kBuiltinPrefix, 0) == 0; }

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  for (const auto& b : builtins()) names.push_back(kBuiltinPrefix + b.name);
  return names;
}

stdfs::path cache_dir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (auto d = env("TUNE_CACHE_DIR"); !d.empty()) return d;
  if (auto d = env("XDG_CACHE_HOME"); !d.empty()) return stdfs::path(d) / "tune";
  if (auto d = env("HOME"); !d.empty()) return stdfs::path(d) / ".cache" / "tune";
  usage_fail("no cache directory for built-in models: set TUNE_CACHE_DIR (or HOME)");
}

model::ModelConfig write_random_model(const RandomModelOptions& o, const stdfs::path& out_arg) {
  const auto names = model::preset_names();
  if (std::find(names.begin(), names.end(), o.preset) == names.end())
    usage_fail("unknown model preset '", o.preset, "' (choose from ", join(names, ", "), ")");
  RandomModelFiles files = random_model_files(o.preset);
  torch::ScalarType dtype = o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  auto model = std::make_shared<model::CausalLM>(files.config);
  model::init_random(*model, o.seed);

  // Tokenizer files first into a staging dir, then the model save copies them beside the weights.
  stdfs::path out = out_arg.lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/" -> "dir"
  if (out.has_parent_path()) fs::ensure_directory(out.parent_path());
  auto staging = fs::temp_sibling(out);
  fs::ensure_directory(staging);
  model::SaveOptions options;
  options.dtype = dtype;
  options.copy_files_from = staging;
  try {
    write_json_file(staging / "tokenizer.json", files.tokenizer);
    write_json_file(staging / "tokenizer_config.json", files.tokenizer_config);
    write_json_file(staging / "generation_config.json", files.generation_config);
    model::save_pretrained(*model, out, options);
  } catch (...) {
    std::error_code ec;
    stdfs::remove_all(staging, ec);
    throw;
  }
  stdfs::remove_all(staging);
  return files.config;
}

stdfs::path builtin_model_dir(const std::string& source) {
  const std::string name = source.substr(std::string_view(kBuiltinPrefix).size());
  auto it = std::find_if(builtins().begin(), builtins().end(), [&](const Builtin& b) { return b.name == name; });
  if (it == builtins().end())
    usage_fail("unknown built-in model '", source, "' (choose from ", join(builtin_model_names(), ", "), ")");
  // A new tune version, config or tokenizer gets a directory of its own instead of a stale copy.
  RandomModelFiles files = random_model_files(it->preset);
  const std::string key = sha256_hex(str(TUNE_VERSION, "\n", it->preset, "\n", it->seed, "\n", files.config.to_json().dump(),
                                         "\n", files.tokenizer.dump(), "\n", files.tokenizer_config.dump()))
                              .substr(0, 16);
  const stdfs::path dir = cache_dir() / "models" / str(name, "-", key);
  if (usable_model_dir(dir)) return dir;

  fs::ensure_directory(dir.parent_path());
  const stdfs::path staging = fs::temp_sibling(dir);
  log::info("materialising ", source, " (tune init-model --preset ", it->preset, " --seed ", it->seed, ") into ",
            dir.string());
  write_random_model({.preset = it->preset, .seed = it->seed, .dtype = "float32"}, staging);
  std::error_code ec;
  stdfs::rename(staging, dir, ec);  // fails when another process's copy landed first: use that one
  if (ec) stdfs::remove_all(staging, ec);
  if (!usable_model_dir(dir)) fail("cannot materialise ", source, " into ", dir.string());
  return dir;
}

stdfs::path resolve_model_dir(const std::string& source, const std::string& what, ModelDirNeeds needs,
                              const std::string& made_by) {
  if (source.empty()) usage_fail("config error: ", what, " is required (a Hugging Face model directory or ",
                                 join(builtin_model_names(), ", "), ")");
  if (is_builtin_model(source)) return builtin_model_dir(source);
  const stdfs::path dir = source;
  if (!stdfs::exists(dir)) {
    if (!made_by.empty()) usage_fail(what, ": ", source, " does not exist: run `", made_by, "` first");
    usage_fail(what, ": model directory ", source, " does not exist");
  }
  if (!stdfs::is_directory(dir)) usage_fail(what, ": ", source, " is not a model directory");
  if (needs.config && !stdfs::exists(dir / "config.json")) usage_fail(what, ": ", source, " has no config.json");
  if (needs.tokenizer && !stdfs::exists(dir / "tokenizer.json") && !stdfs::exists(dir / "tokenizer.model"))
    usage_fail(what, ": ", source, " has no tokenizer.json or tokenizer.model");
  return dir;
}

stdfs::path model_dir(const ModelSection& model) {
  return resolve_model_dir(model.path, "model.path", {}, model.made_by);
}

}  // namespace tune::algo

#pragma once
// A run directory records what produced it: the resolved config (config.json) and a manifest with
// the sha256 of every input file, the tune and LibTorch versions and the creation time.
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tune/core/json.h"

namespace tune::train {

struct ManifestFile {
  std::string role;  // "config", "data", "tokenizer", "model_config", ...
  std::filesystem::path path;
  std::string source;                  // what the config named when it is not the file itself
                                       // ("builtin:tiny", "synth:addition?count=5000&seed=1")
  std::optional<std::string> content;  // a generated source's bytes (it has no file; path empty)

  ManifestFile(std::string role_, std::filesystem::path path_, std::string source_ = "")
      : role(std::move(role_)), path(std::move(path_)), source(std::move(source_)) {}
  // A source generated in memory (no file): listed with the size and hash of `bytes`.
  static ManifestFile generated(std::string role, std::string source, std::string bytes) {
    ManifestFile f(std::move(role), {}, std::move(source));
    f.content = std::move(bytes);
    return f;
  }
};

// {"created": ISO-8601 UTC, "tune_version", "torch_version", "config_sha256" (of config.json as
//  written), "files": [{"role", "path", "source"?, "bytes", "sha256"}]}; a generated source has no
//  "path" and its "bytes" / "sha256" are those of its content.
Json build_manifest(const Json& resolved_config, const std::vector<ManifestFile>& files);

// Creates run_dir and writes config.json and manifest.json (atomically). On a resumed run the
// first manifest's "created" is kept and the resume time is appended to "resumed".
void write_run_directory(const std::filesystem::path& run_dir, const Json& resolved_config,
                         const std::vector<ManifestFile>& files);

}  // namespace tune::train

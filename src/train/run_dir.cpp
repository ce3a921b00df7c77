#include "tune/core/clock.h"
#include "tune/train/run_dir.h"

#include <torch/version.h>

#include <chrono>
#include <ctime>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/version.h"

namespace tune::train {

namespace stdfs = std::filesystem;

namespace {


std::string config_text(const Json& config) { return config.dump(2) + "\n"; }

}  // namespace

Json build_manifest(const Json& resolved_config, const std::vector<ManifestFile>& files) {
  Json list = Json::array();
  for (const auto& f : files) {
    Json entry = {{"role", f.role}};
    if (f.content) {
      entry["source"] = f.source;
      entry["bytes"] = f.content->size();
      entry["sha256"] = sha256_hex(*f.content);
    } else {
      TUNE_CHECK(stdfs::is_regular_file(f.path), "run manifest: ", f.role, " file ", f.path.string(), " does not exist");
      entry["path"] = stdfs::absolute(f.path).lexically_normal().string();
      if (!f.source.empty()) entry["source"] = f.source;
      entry["bytes"] = stdfs::file_size(f.path);
      entry["sha256"] = sha256_file_hex(f.path);
    }
    list.push_back(entry);
  }
  return Json{{"created", utc_timestamp()},
              {"tune_version", TUNE_VERSION},
              {"torch_version", TORCH_VERSION},
              {"config_sha256", sha256_hex(config_text(resolved_config))},
              {"files", list}};
}

void write_run_directory(const stdfs::path& run_dir, const Json& resolved_config, const std::vector<ManifestFile>& files) {
  fs::ensure_directory(run_dir);
  Json manifest = build_manifest(resolved_config, files);
  const stdfs::path manifest_path = run_dir / "manifest.json";
  if (stdfs::exists(manifest_path)) {
    Json old = read_json_file(manifest_path);
    if (old.contains("created")) {
      Json resumed = old.value("resumed", Json::array());
      resumed.push_back(manifest["created"]);
      manifest["created"] = old["created"];
      manifest["resumed"] = resumed;
    }
  }
  fs::write_file_atomic(run_dir / "config.json", config_text(resolved_config));
  write_json_file(manifest_path, manifest);
}

}  // namespace tune::train

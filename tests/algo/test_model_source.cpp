// Model sources: the cache directory's precedence, builtin:tiny materialised once and equal to
// init-model's output, and the errors for a missing directory or file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>

#include "support/error_text.h"
#include "tune/algo/model_source.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune::algo {
namespace {

namespace stdfs = std::filesystem;

// Sets an environment variable for the scope, restoring the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

stdfs::path temp_dir(const std::string& tag) {
  auto dir = stdfs::temp_directory_path() / ("tune-model-source-" + tag + "-" + std::to_string(::getpid()));
  stdfs::remove_all(dir);
  stdfs::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& f) { return test::error_of<UsageError>(f, "(no usage error)"); }

TEST(ModelSource, CacheDirPrecedence) {
  ScopedEnv home("HOME", "/home/u"), xdg("XDG_CACHE_HOME", std::nullopt), tune("TUNE_CACHE_DIR", std::nullopt);
  EXPECT_EQ(cache_dir(), stdfs::path("/home/u/.cache/tune"));
  ScopedEnv xdg2("XDG_CACHE_HOME", "/x/cache");
  EXPECT_EQ(cache_dir(), stdfs::path("/x/cache/tune"));
  ScopedEnv tune2("TUNE_CACHE_DIR", "/t/c");
  EXPECT_EQ(cache_dir(), stdfs::path("/t/c"));
}

TEST(ModelSource, BuiltinTinyIsInitModelSeed0MaterialisedOnce) {
  const auto root = temp_dir("builtin");
  ScopedEnv cache("TUNE_CACHE_DIR", (root / "cache").string());
  const auto dir = resolve_model_dir("builtin:tiny", "model.path");
  EXPECT_EQ(dir.parent_path(), root / "cache" / "models");
  write_random_model({.preset = "tiny", .seed = 0}, root / "init");
  for (const char* name : {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json"})
    EXPECT_EQ(fs::read_file(dir / name), fs::read_file(root / "init" / name)) << name;
  // The second use finds it: same directory, nothing rewritten, no temporary siblings.
  const auto written = stdfs::last_write_time(dir / "model.safetensors");
  EXPECT_EQ(builtin_model_dir("builtin:tiny"), dir);
  EXPECT_EQ(stdfs::last_write_time(dir / "model.safetensors"), written);
  EXPECT_EQ(std::distance(stdfs::directory_iterator(dir.parent_path()), stdfs::directory_iterator()), 1);
  EXPECT_NE(error_of([] { builtin_model_dir("builtin:giant"); }).find("choose from builtin:tiny"), std::string::npos);
  stdfs::remove_all(root);
}

TEST(ModelSource, MissingDirectoryOrFilesAreNamed) {
  const auto root = temp_dir("missing");
  const std::string missing = (root / "nope").string();
  EXPECT_EQ(error_of([&] { resolve_model_dir(missing, "model.path"); }),
            "model.path: model directory " + missing + " does not exist");
  EXPECT_EQ(error_of([&] { resolve_model_dir(missing, "model.path", {}, "tune sft --config configs/sft/tiny.yaml"); }),
            "model.path: " + missing + " does not exist: run `tune sft --config configs/sft/tiny.yaml` first");
  const auto dir = root / "model";
  stdfs::create_directories(dir);
  EXPECT_EQ(error_of([&] { resolve_model_dir(dir.string(), "--model"); }), "--model: " + dir.string() + " has no config.json");
  fs::write_file_atomic(dir / "config.json", "{}");
  EXPECT_EQ(error_of([&] { resolve_model_dir(dir.string(), "--model"); }),
            "--model: " + dir.string() + " has no tokenizer.json or tokenizer.model");
  // What the caller does not need is not asked for.
  EXPECT_EQ(resolve_model_dir(dir.string(), "--model", {.tokenizer = false}), dir);
  EXPECT_NE(error_of([] { resolve_model_dir("", "model.path"); }).find("model.path is required"), std::string::npos);
  stdfs::remove_all(root);
}

}  // namespace
}  // namespace tune::algo

#pragma once
// Scratch locations for tests, unique per process so parallel ctest runs do not collide.
#include <unistd.h>

#include <filesystem>
#include <string>

namespace tune::test {

// A path under the temp directory that does not exist (removed if an earlier run left it).
inline std::filesystem::path fresh_path(const std::string& name) {
  auto path = std::filesystem::temp_directory_path() / ("tune-test-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(path);
  return path;
}

// The same, created empty.
inline std::filesystem::path fresh_dir(const std::string& name) {
  auto path = fresh_path(name);
  std::filesystem::create_directories(path);
  return path;
}

}  // namespace tune::test

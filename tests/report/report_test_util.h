#pragma once
// A fresh temporary directory per test (tests/support/temp_dir.h), removed afterwards, and small
// file writers.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "tune/core/json.h"

namespace tune::report::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& name) : path_(tune::test::fresh_dir("report-" + name)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

inline void write_lines(const std::filesystem::path& path, const std::vector<Json>& lines) {
  std::string text;
  for (const auto& l : lines) text += l.dump() + "\n";
  write_text(path, text);
}

}  // namespace tune::report::testing

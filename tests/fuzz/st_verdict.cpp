// Prints one line per file: "<path>\t<verdict>", the verdict being "OK" or the reference error
// name our reader gave ("InvalidOffset", ...). tests/fuzz/differential.py compares these verdicts
// with the Python reference library's on the same files (e.g. a fuzzing corpus).
#include <cstdio>
#include <string>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/io/safetensors.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string verdict = "OK";
    try {
      std::string bytes = tune::fs::read_file(argv[i]);
      tune::io::SafetensorsFile::parse(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), argv[i]);
    } catch (const tune::Error& e) {
      std::string message = e.what();
      auto open = message.rfind('(');
      verdict = open == std::string::npos ? "Other" : message.substr(open + 1, message.size() - open - 2);
    }
    std::printf("%s\t%s\n", argv[i], verdict.c_str());
  }
  return 0;
}

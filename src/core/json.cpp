#include "tune/core/json.h"

#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune {

Json read_json_file(const std::filesystem::path& path) {
  std::string text = fs::read_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into line:column, which is what a person can find in an editor.
    size_t line = 1, col = 1;
    for (size_t i = 0; i < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail(path.string(), ":", line, ":", col, ": invalid JSON");
  }
}

void write_json_file(const std::filesystem::path& path, const Json& value) {
  fs::write_file_atomic(path, value.dump(2) + "\n");
}

}  // namespace tune

#pragma once
// One JSON type for the whole project. Ordered, so files we write keep a readable key order.
#include <filesystem>
#include <nlohmann/json.hpp>

namespace tune {

using Json = nlohmann::ordered_json;

// Parses a JSON file; the error names the file, line and column.
Json read_json_file(const std::filesystem::path& path);
// Pretty-printed (2 spaces), written atomically.
void write_json_file(const std::filesystem::path& path, const Json& value);

}  // namespace tune

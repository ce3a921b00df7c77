#pragma once
// SHA-256, for run manifests (hashes of config, data, tokenizer and model config files).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace tune {

std::string sha256_hex(std::string_view bytes);
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace tune

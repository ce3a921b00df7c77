#pragma once
// Small string helpers shared by every module (torch-free).
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tune {

// Concatenates any streamable values: str("step ", 3, " of ", 10) -> "step 3 of 10".
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::vector<std::string> split(std::string_view text, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view text);
std::string fixed(double value, int decimals);       // fixed(3.14159, 2) -> "3.14"
std::string human_bytes(uint64_t bytes);             // 1536 -> "1.5 KiB"
std::string human_duration(double seconds);          // 3725 -> "1h02m05s"
std::string human_count(double n);                   // 1.5e6 -> "1.50M"
// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate within a small distance, or "" when none is close.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace tune

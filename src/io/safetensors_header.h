#pragma once
// Parsing of the safetensors JSON header (internal to tune_io). The header is untrusted input: it
// is streamed through nlohmann's SAX parser into a fixed three-level state machine, so no DOM is
// built, nesting deeper than the format allows is rejected at once, and numbers that are not
// non-negative 64-bit integers never reach a shape or an offset.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tune/io/safetensors.h"

namespace tune::io::detail {

struct ParsedHeader {
  std::vector<TensorInfo> tensors;  // in the header's key order
  std::map<std::string, std::string> metadata;
};

// Offset of the first byte that is not part of well-formed UTF-8 (the same rules as Rust's
// str::from_utf8: no overlong forms, no surrogates, nothing above U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view text);

// Untrusted text made fit for an error message: control bytes as \xNN (a NUL would cut the message
// short in what()), and at most `max` bytes of it.
std::string printable(std::string_view text, size_t max = 120);

// Parses the header text into entries. On a problem returns false and sets `problem` to a
// description (without the file name or the reference error code).
bool parse_header_json(std::string_view text, ParsedHeader& out, std::string& problem);

}  // namespace tune::io::detail

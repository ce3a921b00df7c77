#include "io/safetensors_header.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>

#include "tune/core/str.h"

namespace tune::io::detail {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  auto in = [](uint8_t c, uint8_t lo, uint8_t hi) { return c >= lo && c <= hi; };
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Unicode Table 3-7 (well-formed byte sequences): the second byte's range depends on the first.
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (in(c, 0xC2, 0xDF)) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF)) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (in(c, 0xF1, 0xF3)) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (!in(s[i + 1], lo, hi)) return i;
    for (size_t k = 2; k < len; ++k)
      if (!in(s[i + k], 0x80, 0xBF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string printable(std::string_view text, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max) out += str("...(", text.size(), " bytes)");
  return out;
}

namespace {

using json = nlohmann::json;

// What the parser expects next. Each state accepts only the events the format allows there.
enum class State {
  kTop,             // the opening '{' of the header
  kTopKey,          // a tensor name, "__metadata__" or the closing '}'
  kMetadataValue,   // '{' (or null, which the reference reads as "no metadata")
  kMetadataKey,     // a metadata key or '}'
  kMetadataString,  // the metadata value, a string
  kEntry,           // '{' opening a tensor entry
  kEntryKey,        // dtype / shape / data_offsets / '}'
  kDtype,           // the dtype string
  kShapeOpen,       // '[' of the shape
  kShapeItem,       // a dimension or ']'
  kOffsetsOpen,     // '[' of data_offsets
  kOffsetsItem,     // an offset or ']'
  kDone,
};

class HeaderSax {
 public:
  explicit HeaderSax(ParsedHeader& out) : out_(out) {}

  std::string problem;

  bool null() {
    if (state_ == State::kMetadataValue) {
      state_ = State::kTopKey;
      return true;
    }
    return unexpected("null");
  }
  bool boolean(bool value) { return unexpected(value ? "true" : "false"); }
  bool number_integer(json::number_integer_t value) {
    if (value < 0) return unexpected(str("the negative number ", value));
    return number(static_cast<uint64_t>(value));
  }
  bool number_unsigned(json::number_unsigned_t value) { return number(value); }
  bool number_float(json::number_float_t, const json::string_t& text) {
    // Also where integers beyond 2^64-1 end up: nlohmann reads them as floating point.
    return unexpected(str("the number ", clip(text), " (not an unsigned 64-bit integer)"));
  }
  bool string(json::string_t& value) {
    switch (state_) {
      case State::kMetadataString:
        out_.metadata.emplace(std::move(metadata_key_), std::move(value));
        state_ = State::kMetadataKey;
        return true;
      case State::kDtype: {
        auto dtype = parse_dtype(value);
        if (!dtype) return fail_with(str("tensor \"", clip(entry().name), "\": unknown dtype \"", clip(value), "\""));
        entry().dtype = *dtype;
        state_ = State::kEntryKey;
        return true;
      }
      default:
        return unexpected(str("the string \"", clip(value), "\""));
    }
  }
  bool binary(json::binary_t&) { return unexpected("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::kTop:
        state_ = State::kTopKey;
        return true;
      case State::kMetadataValue:
        state_ = State::kMetadataKey;
        return true;
      case State::kEntry:
        state_ = State::kEntryKey;
        seen_dtype_ = seen_shape_ = seen_offsets_ = false;
        return true;
      default:
        return unexpected("an object");
    }
  }
  bool key(json::string_t& name) {
    switch (state_) {
      case State::kTopKey:
        if (name == "__metadata__") {
          if (seen_metadata_) return fail_with("duplicate key \"__metadata__\"");
          seen_metadata_ = true;
          state_ = State::kMetadataValue;
          return true;
        }
        if (!names_.insert(name).second) return fail_with(str("duplicate tensor name \"", clip(name), "\""));
        out_.tensors.push_back(TensorInfo{name, DType::BOOL, {}, 0, 0});
        state_ = State::kEntry;
        return true;
      case State::kMetadataKey:
        if (out_.metadata.count(name)) return fail_with(str("duplicate __metadata__ key \"", clip(name), "\""));
        metadata_key_ = std::move(name);
        state_ = State::kMetadataString;
        return true;
      case State::kEntryKey:
        return entry_field(name);
      default:
        return unexpected(str("the key \"", clip(name), "\""));  // unreachable: keys follow '{'
    }
  }
  bool end_object() {
    switch (state_) {
      case State::kTopKey:
        state_ = State::kDone;
        return true;
      case State::kMetadataKey:
        state_ = State::kTopKey;
        return true;
      case State::kEntryKey: {
        const char* missing = !seen_dtype_ ? "dtype" : !seen_shape_ ? "shape" : !seen_offsets_ ? "data_offsets" : nullptr;
        if (missing) return fail_with(str("tensor \"", clip(entry().name), "\": missing field \"", missing, "\""));
        state_ = State::kTopKey;
        return true;
      }
      default:
        return unexpected("'}'");  // unreachable: the lexer pairs brackets
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::kShapeOpen:
        state_ = State::kShapeItem;
        return true;
      case State::kOffsetsOpen:
        state_ = State::kOffsetsItem;
        offsets_seen_ = 0;
        return true;
      default:
        return unexpected("an array");
    }
  }
  bool end_array() {
    switch (state_) {
      case State::kShapeItem:
        state_ = State::kEntryKey;
        return true;
      case State::kOffsetsItem:
        if (offsets_seen_ != 2)
          return fail_with(str("tensor \"", clip(entry().name), "\": data_offsets has ", offsets_seen_, " values, expected 2"));
        state_ = State::kEntryKey;
        return true;
      default:
        return unexpected("']'");
    }
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) {
    return fail_with(str("invalid JSON: ", clip(error.what())));
  }

 private:
  static std::string clip(std::string_view text) { return printable(text); }

  TensorInfo& entry() { return out_.tensors.back(); }
  const TensorInfo& entry() const { return out_.tensors.back(); }

  bool fail_with(std::string message) {
    if (problem.empty()) problem = std::move(message);
    return false;
  }

  std::string where() const {
    switch (state_) {
      case State::kTop: return "the header must be a JSON object";
      case State::kTopKey: return "expected a tensor name";  // unreachable
      case State::kMetadataValue: return "__metadata__ must be an object of strings";
      case State::kMetadataKey: return "expected a __metadata__ key";  // unreachable
      case State::kMetadataString:
        return str("__metadata__ value of \"", clip(metadata_key_), "\" must be a string");
      case State::kEntry: return str("tensor \"", clip(entry().name), "\" must be an object");
      case State::kEntryKey: return str("tensor \"", clip(entry().name), "\": expected a field");
      case State::kDtype: return str("tensor \"", clip(entry().name), "\": dtype must be a string");
      case State::kShapeOpen: return str("tensor \"", clip(entry().name), "\": shape must be an array");
      case State::kShapeItem:
        return str("tensor \"", clip(entry().name), "\": shape must hold non-negative integers");
      case State::kOffsetsOpen:
        return str("tensor \"", clip(entry().name), "\": data_offsets must be an array [begin, end]");
      case State::kOffsetsItem:
        return str("tensor \"", clip(entry().name), "\": data_offsets must hold two non-negative integers");
      case State::kDone: return "unexpected content after the header object";  // unreachable
    }
    return "unexpected state";
  }

  bool unexpected(std::string_view found) { return fail_with(str(where(), ", found ", found)); }

  bool number(uint64_t value) {
    switch (state_) {
      case State::kShapeItem:
        entry().shape.push_back(value);
        return true;
      case State::kOffsetsItem:
        if (offsets_seen_ == 2)
          return fail_with(str("tensor \"", clip(entry().name), "\": data_offsets has more than 2 values"));
        (offsets_seen_ == 0 ? entry().begin : entry().end) = value;
        ++offsets_seen_;
        return true;
      default:
        return unexpected(str("the number ", value));
    }
  }

  bool entry_field(const std::string& field) {
    auto once = [&](bool& seen, State next) {
      if (seen) return fail_with(str("tensor \"", clip(entry().name), "\": duplicate field \"", field, "\""));
      seen = true;
      state_ = next;
      return true;
    };
    if (field == "dtype") return once(seen_dtype_, State::kDtype);
    if (field == "shape") return once(seen_shape_, State::kShapeOpen);
    if (field == "data_offsets") return once(seen_offsets_, State::kOffsetsOpen);
    return fail_with(str("tensor \"", clip(entry().name), "\": unknown field \"", clip(field),
                         "\" (allowed: dtype, shape, data_offsets)"));
  }

  ParsedHeader& out_;
  State state_ = State::kTop;
  std::unordered_set<std::string> names_;
  std::string metadata_key_;
  bool seen_metadata_ = false;
  bool seen_dtype_ = false, seen_shape_ = false, seen_offsets_ = false;
  int offsets_seen_ = 0;
};

}  // namespace

bool parse_header_json(std::string_view text, ParsedHeader& out, std::string& problem) {
  // nlohmann skips a UTF-8 byte order mark; the reference (serde_json) rejects it.
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") {
    problem = "invalid JSON: the header starts with a byte order mark";
    return false;
  }
  // nlohmann's lexer takes a NUL byte for the end of input, so "{}\0garbage" would pass. A raw NUL
  // is never valid JSON (not even inside a string), so any NUL fails here.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    problem = str("invalid JSON: NUL byte at byte ", nul, " of the header");
    return false;
  }
  HeaderSax sax(out);
  bool ok = false;
  try {
    ok = json::sax_parse(text.data(), text.data() + text.size(), &sax, json::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
  } catch (const std::exception& e) {  // allocation failure or an nlohmann internal error
    sax.problem = str("invalid JSON: ", e.what());
    ok = false;
  }
  if (!ok) {
    problem = sax.problem.empty() ? "invalid JSON" : sax.problem;
    return false;
  }
  return true;
}

}  // namespace tune::io::detail

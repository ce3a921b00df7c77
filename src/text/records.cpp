#include "tune/text/records.h"

#include <algorithm>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/text/synthetic.h"

namespace tune::text {

namespace {

// Byte offset of the first ill-formed UTF-8 sequence, or npos.
size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace

bool is_valid_utf8(std::string_view s) { return invalid_utf8_offset(s) == std::string_view::npos; }

namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, column 5: "
std::string short_parse_message(const std::string& what) {
  auto pos = what.find("] ");
  return pos == std::string::npos ? what : what.substr(pos + 2);
}

class Collector {
 public:
  Collector(const ReadOptions& options, RecordSet& out) : options_(options), out_(out) {}

  bool full() const { return options_.max_records > 0 && static_cast<int64_t>(out_.records.size()) >= options_.max_records; }

  void bad(const std::string& where, const std::string& problem) {
    if (!options_.skip_invalid) fail(where, ": ", problem);
    ++out_.skipped;
    if (out_.skip_reasons.size() < 5) out_.skip_reasons.push_back(str(where, ": ", problem));
  }

  void good(Json value, std::string where) { out_.records.push_back({std::move(value), std::move(where)}); }

 private:
  const ReadOptions& options_;
  RecordSet& out_;
};

void parse_jsonl(std::string_view content, const std::string& name, Collector& sink) {
  size_t line_no = 0, pos = 0;
  while (pos < content.size() && !sink.full()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // UTF-8 BOM
    if (trim(line).empty()) continue;
    std::string where = str(name, ":", line_no);
    if (size_t bad = invalid_utf8_offset(line); bad != std::string_view::npos) {
      sink.bad(where, str("invalid UTF-8 at byte ", bad + 1, " of the line"));
      continue;
    }
    Json value;
    try {
      value = Json::parse(line);
    } catch (const Json::parse_error& e) {
      sink.bad(where, str("invalid JSON: ", short_parse_message(e.what())));
      continue;
    }
    if (!value.is_object()) {
      sink.bad(where, str("expected a JSON object, got ", value.type_name()));
      continue;
    }
    sink.good(std::move(value), std::move(where));
  }
}

// Line of each top-level array element, found by a small scan (strings and nesting aware) so that
// errors in a JSON array file can still name a line.
std::vector<size_t> element_lines(std::string_view content) {
  std::vector<size_t> lines;
  size_t line = 1;
  int depth = 0;
  bool in_string = false, escaped = false, expect_element = false;
  for (char c : content) {
    if (c == '\n') ++line;
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (depth == 1 && expect_element && c != ']') {
      lines.push_back(line);
      expect_element = false;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      ++depth;
      if (depth == 1) expect_element = true;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_element = true;
    }
  }
  return lines;
}

void parse_array(std::string_view content, const std::string& name, Collector& sink) {
  // A broken array cannot be resynchronised reliably: this is an error even with skip_invalid.
  if (size_t at = invalid_utf8_offset(content); at != std::string_view::npos) {
    size_t line = 1 + std::count(content.begin(), content.begin() + at, '\n');
    fail(name, ":", line, ": invalid UTF-8");
  }
  Json array;
  try {
    array = Json::parse(content);
  } catch (const Json::parse_error& e) {
    std::string msg = short_parse_message(e.what());
    // "parse error at line L, column C: ..." already carries the line.
    fail(name, ": invalid JSON array: ", msg);
  }
  TUNE_CHECK(array.is_array(), name, ": expected a JSON array of objects");
  std::vector<size_t> lines = element_lines(content);
  for (size_t i = 0; i < array.size() && !sink.full(); ++i) {
    std::string where = str(name, ":", i < lines.size() ? lines[i] : 0, " [", i, "]");
    if (!array[i].is_object()) {
      sink.bad(where, str("expected a JSON object, got ", array[i].type_name()));
      continue;
    }
    sink.good(std::move(array[i]), std::move(where));
  }
}

}  // namespace

RecordSet parse_records(std::string_view content, const std::string& name, const ReadOptions& options) {
  RecordSet out;
  Collector sink(options, out);
  std::string_view body = content.substr(0, 3) == "\xEF\xBB\xBF" ? content.substr(3) : content;
  size_t first = body.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && body[first] == '[') parse_array(body, name, sink);
  else parse_jsonl(content, name, sink);
  return out;
}

RecordSet read_records(const std::filesystem::path& path, const ReadOptions& options) {
  // A synthetic source is generated here, the one place datasets are opened, so every reader
  // (training, evaluation, `tune data`) takes it where it takes a file.
  if (is_synthetic_source(path.string())) return parse_records(synthetic_source_jsonl(path.string()), path.string(), options);
  TUNE_CHECK(std::filesystem::exists(path), "dataset file not found: ", path.string());
  return parse_records(fs::read_file(path), path.string(), options);
}

}  // namespace tune::text

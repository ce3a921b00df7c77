#pragma once
// Reading raw dataset records: JSONL (one JSON object per line, blank lines skipped) or a file
// holding one JSON array of objects. Every problem names the file and line ("data.jsonl:7:
// invalid JSON ..."); with skip_invalid the bad records are counted and skipped instead.
// Torch-free.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/json.h"

namespace tune::text {

struct Record {
  Json value;           // always an object
  std::string where;    // "file:line" (JSONL) or "file:line [i]" (element i of a JSON array)
};

struct ReadOptions {
  bool skip_invalid = false;  // count and skip broken records instead of failing
  int64_t max_records = 0;    // stop after this many good records (0: all)
};

struct RecordSet {
  std::vector<Record> records;
  int64_t skipped = 0;                   // broken records skipped (skip_invalid only)
  std::vector<std::string> skip_reasons; // the first few skipped records' problems
};

// True when `bytes` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// Reads `path`. A first non-blank character '[' means a JSON array, anything else JSONL. A
// synthetic source ("synth:addition?count=5000&seed=1", synthetic.h) is generated instead of read.
RecordSet read_records(const std::filesystem::path& path, const ReadOptions& options = {});
// The same from memory; `name` is used in messages in place of a file name.
RecordSet parse_records(std::string_view content, const std::string& name, const ReadOptions& options = {});

// Thrown inside record conversion for a problem with one record; read/convert code turns it into
// a tune::Error with the record's location, or counts it under skip_invalid.
class RecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tune::text

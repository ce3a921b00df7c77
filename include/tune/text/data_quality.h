#pragma once
// `tune data check` / `tune data filter`: per-record quality measures, practitioners' filters and a
// report. The filters look at a record's text: every message content, completion and response of
// its (first) sample joined with newlines.
//   length          min_chars .. max_chars characters (UTF-8 code points)
//   distinct words  distinct / total words >= min_distinct_words (words: lower-cased runs of letters
//                   and digits; non-ASCII bytes count as letters)
//   blocklist       case-insensitive (ASCII) substring match
//   near-duplicates Jaccard similarity of word 3-shingle sets >= near_dup_threshold to an EARLIER
//                   KEPT record; candidates come from MinHash LSH (128 hashes, 32 bands of 4), and
//                   the exact Jaccard decides
// Token statistics (with a tokenizer + template): min, p50, p90, p99, max (nearest rank) and the
// share of records longer than max_seq_len. Torch-free.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tune/core/config.h"
#include "tune/text/chat_mask.h"
#include "tune/text/dataset_config.h"
#include "tune/text/dataset_format.h"

namespace tune::text {

struct QualityConfig {
  int64_t min_chars = 10;
  int64_t max_chars = 2000;
  double min_distinct_words = 0.7;
  double near_dup_threshold = 0.85;   // > 1 disables
  std::vector<std::string> blocklist;
  int64_t max_seq_len = 2048;         // for the truncated share

  template <class V>
  void visit(V& v) {
    v("min_chars", min_chars, "drop records shorter than this (characters)", config::at_least<int64_t>(0));
    v("max_chars", max_chars, "drop records longer than this (characters)", config::at_least<int64_t>(1));
    v("min_distinct_words", min_distinct_words, "drop records with a lower distinct/total word ratio", config::in_range(0.0, 1.0));
    v("near_dup_threshold", near_dup_threshold, "drop records this similar to an earlier kept one (>1: off)", config::greater_than(0.0));
    v("blocklist", blocklist, "drop records containing any of these (case-insensitive)");
    v("max_seq_len", max_seq_len, "token limit for the truncated share", config::greater_than<int64_t>(0));
  }
};

// The text the filters look at.
std::string quality_text(const Sample& sample);

struct WordStats {
  int64_t words = 0;
  int64_t distinct = 0;
  double distinct_ratio() const { return words == 0 ? 1.0 : static_cast<double>(distinct) / static_cast<double>(words); }
};
WordStats word_stats(const std::string& text);
std::vector<std::string> words_of(const std::string& text);  // lower-cased words
int64_t count_chars(const std::string& utf8);                // code points

// Exact Jaccard similarity of the word-shingle sets of two texts (3 words; shorter texts: one shingle).
double shingle_jaccard(const std::string& a, const std::string& b);

// Near-duplicate detector: keeps the texts added so far and answers "most similar earlier one".
class NearDuplicates {
 public:
  explicit NearDuplicates(double threshold);
  // Index of the kept text with similarity >= threshold (the most similar), or -1.
  int64_t find(const std::string& text, double* similarity = nullptr) const;
  void add(const std::string& text);  // adds as the next index
 private:
  struct Entry {
    std::vector<uint64_t> shingles;  // sorted, unique
  };
  double threshold_;
  std::vector<Entry> kept_;
  std::vector<std::map<uint64_t, std::vector<int64_t>>> bands_;
};

// Per-record verdicts.
struct RecordQuality {
  std::string where;
  int64_t chars = 0;
  int64_t tokens = -1;             // -1 without a tokenizer
  double distinct_ratio = 1.0;
  std::vector<std::string> problems;  // too_short, too_long, low_distinct_words, blocked, near_duplicate
  int64_t duplicate_of = -1;       // record index of the earlier kept near-duplicate
  double similarity = 0.0;
  bool keep() const { return problems.empty(); }
};

struct QualityRun {
  std::vector<Record> records;           // the good records, in file order
  std::vector<RecordQuality> verdicts;   // one per record
  int64_t invalid = 0;                   // unreadable / unconvertible records skipped
  std::vector<std::string> invalid_reasons;
};

// Reads `dataset` (skip_invalid forced on: broken records are reported, not fatal) and judges
// every record. `masker` (may be null) gives token counts.
QualityRun assess_dataset(const DatasetConfig& dataset, const QualityConfig& quality, const ChatMasker* masker);

// The report of `tune data check`.
Json check_dataset(const DatasetConfig& dataset, const QualityConfig& quality, const ChatMasker* masker = nullptr);

struct FilterResult {
  int64_t kept = 0;
  int64_t dropped = 0;
  std::map<std::string, int64_t> dropped_by;  // problem -> records (a record may have several)
  Json report;                                // check_dataset's report plus kept/dropped counts
};

// Writes the kept records (their original JSON, one per line) to `output` atomically, and the
// report to `report_path` when it is not empty.
FilterResult filter_dataset(const DatasetConfig& dataset, const std::filesystem::path& output,
                            const QualityConfig& quality, const ChatMasker* masker = nullptr,
                            const std::filesystem::path& report_path = {});

// Nearest-rank percentile (p in [0, 100]) of unsorted values; 0 for none.
double percentile(std::vector<double> values, double p);

}  // namespace tune::text

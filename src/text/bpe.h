#pragma once
// The BPE model of tokenizer.json: a word (one pre-tokenized piece) becomes its characters, then
// the adjacent pair with the lowest merge rank is merged (leftmost on ties) until none applies.
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tune::text {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // Throws when a merge names a token missing from the vocab, or its result is missing.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Appends the ids of `word` to `out`. Results for short words are cached.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when unknown
  int32_t max_id() const { return max_id_; }

 private:
  std::vector<int32_t> merge_word(std::string_view word) const;
  std::optional<int32_t> lookup(std::string_view piece) const;

  struct MergeTarget {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  // Open-addressing table of merges keyed by the pair of ids (the hot lookup of long words).
  struct MergeSlot {
    uint64_t key = kEmptyKey;
    MergeTarget target{};
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};
  std::vector<MergeSlot> merge_table_;
  uint64_t merge_mask_ = 0;
  const MergeTarget* find_merge(int32_t a, int32_t b) const;
  void insert_merge(uint64_t key, MergeTarget target);
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  int32_t max_id_ = -1;
  // Single characters below U+0200 (ASCII and the whole byte-level alphabet), -1 when absent.
  std::array<int32_t, 512> char_ids_{};

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace tune::text

#pragma once
// SentencePiece tokenizer.model, read straight from its protobuf bytes: BPE (highest-score merge)
// and unigram (Viterbi), byte fallback, the normalizer spec (precompiled character map,
// add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tune/text/tokenizer.h"

namespace tune::text {

class SentencePieceTokenizer : public Tokenizer {
 public:
  enum class PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  enum class ModelType { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

  // `source` names the file in errors.
  SentencePieceTokenizer(std::string_view model_proto, const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;

  // The normalized form the model segments (spaces escaped as U+2581, dummy prefix added).
  std::string normalize(std::string_view text) const;

 private:
  struct Piece {
    std::string text;
    float score = 0;
    PieceType type = PieceType::Normal;
  };
  // Normalizes the next character(s) of `input`: (normalized text, bytes consumed).
  std::pair<std::string, size_t> normalize_prefix(std::string_view input) const;
  void encode_bpe(std::string_view normalized, std::vector<std::pair<std::string_view, int32_t>>& out) const;
  void encode_unigram(std::string_view normalized, std::vector<std::pair<std::string_view, int32_t>>& out) const;
  size_t user_defined_prefix(std::string_view text) const;  // bytes of the longest match, 0 if none
  std::optional<int32_t> mergeable_id(std::string_view piece) const;

  std::string source_;
  std::vector<Piece> pieces_;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::vector<std::string> user_defined_;
  ModelType model_type_ = ModelType::Unigram;
  bool byte_fallback_ = false;
  bool treat_whitespace_as_suffix_ = false;
  int32_t unk_id_ = 0;
  int32_t byte_ids_[256];
  float min_score_ = 0, max_score_ = 0;
  size_t max_piece_bytes_ = 0;
  // Normalizer spec.
  std::string charsmap_trie_;        // raw double-array units
  std::string charsmap_normalized_;  // NUL-separated replacement strings
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
};

// Reads a tokenizer.model file.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path);

}  // namespace tune::text

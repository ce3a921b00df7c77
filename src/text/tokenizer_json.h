#pragma once
// A tokenizer.json pipeline: added tokens, normalizer, pre-tokenizer, BPE model, post-processor,
// decoder.
#include <memory>
#include <string>
#include <unordered_map>

#include "text/bpe.h"
#include "text/tokenizer_components.h"
#include "tune/text/tokenizer.h"

namespace tune::text {

class JsonTokenizer : public Tokenizer {
 public:
  JsonTokenizer(const pipeline::SpecJson& spec, const std::string& source);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;

  // The ids the post-processor puts before and after a sequence (what add_special_tokens adds).
  std::pair<std::vector<int32_t>, std::vector<int32_t>> template_ids() const;

  struct AddedToken {
    int32_t id = 0;
    // For normalized tokens the normalized content: what is matched, and (as in the reference)
    // what id_to_token and decode show.
    std::string content;
    bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
  };

  // Finds added tokens in text, leftmost-longest, honouring single_word / lstrip / rstrip.
  class AddedMatcher {
   public:
    void add(const AddedToken* token);
    bool empty() const { return count_ == 0; }
    struct Match {
      size_t begin, end;
      int32_t id;
    };
    std::vector<Match> find(std::string_view text) const;

   private:
    std::vector<const AddedToken*> by_first_byte_[256];  // longest first
    size_t count_ = 0;
  };

 private:
  void encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& ids) const;

  std::string source_;
  std::vector<AddedToken> added_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  AddedMatcher raw_matcher_, normalized_matcher_;
  std::unique_ptr<pipeline::Normalizer> normalizer_;
  std::unique_ptr<pipeline::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<pipeline::PostProcessor> post_processor_;
  std::unique_ptr<pipeline::Decoder> decoder_;
  int32_t vocab_size_ = 0;
};

}  // namespace tune::text

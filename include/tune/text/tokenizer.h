#pragma once
// Tokenizers read from a Hugging Face model directory: tokenizer.json (byte-level BPE as in GPT-2,
// Llama 3, Qwen2/2.5/3; BPE with byte fallback as in converted Llama 2 / Mistral) or a
// SentencePiece tokenizer.model, plus special-token settings from tokenizer_config.json and
// generation_config.json. Torch-free.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/json.h"

namespace tune::text {

struct SpecialTokens {
  std::optional<int32_t> bos;   // added at the start when add_bos is true
  std::optional<int32_t> eos;   // the model's end-of-sequence token (tokenizer_config eos_token)
  std::optional<int32_t> pad;   // pad_token; may equal eos
  std::optional<int32_t> unk;
  bool add_bos = false;         // tokenizer_config add_bos_token (or the post-processor's template)
  bool add_eos = false;
  // Generation stops at any of these: eos plus generation_config.json eos_token_id entries.
  std::vector<int32_t> stop_ids;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // add_special_tokens: apply the tokenizer's post-processing (BOS/EOS) as HF does by default.
  // Chat-rendered text is encoded with add_special_tokens = false (the template carries them).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const = 0;

  virtual int32_t vocab_size() const = 0;  // highest id + 1, added tokens included
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // "" for an unknown id
  virtual bool is_special(int32_t id) const = 0;

  const SpecialTokens& special() const { return special_; }
  SpecialTokens& special() { return special_; }

  // Loads tokenizer.json (preferred) or tokenizer.model from `dir`, plus tokenizer_config.json and
  // generation_config.json when present. Errors name the file and the offending key.
  // `dir` may also name a tokenizer.json or *.model file; the config files are then looked up
  // next to it.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);

  // A tokenizer from tokenizer.json content; `source` names it in errors. Special tokens come
  // from the post-processor only until apply_config is called.
  static std::unique_ptr<Tokenizer> from_json(const Json& tokenizer_json,
                                              const std::string& source = "tokenizer.json");

  // Reads bos/eos/pad/unk tokens and add_bos_token/add_eos_token from tokenizer_config.json
  // content, and eos_token_id (int or list) from generation_config.json content into special().
  // Either may be null. Token names that are not in the vocabulary are errors naming the key.
  void apply_config(const Json& tokenizer_config, const Json& generation_config,
                    const std::string& source = "tokenizer_config.json");

 protected:
  SpecialTokens special_;
};

// Streams text while ids arrive one at a time, never emitting half a UTF-8 character.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string push(int32_t id);  // text that became complete with this id (may be "")
  std::string finish();          // whatever is left (invalid bytes as U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  // Only a window of ids is decoded each time: ids_[prefix_:] where ids_[prefix_:read_] has been
  // returned already. Decoding a little context keeps decoders that look at neighbours
  // (leading-space stripping, byte fallback) consistent with decoding the whole sequence.
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;
  size_t read_ = 0;
};

}  // namespace tune::text

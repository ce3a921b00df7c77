#pragma once
// The stages of a tokenizer.json pipeline other than the model: normalizers, pre-tokenizers,
// post-processors and decoders. Each is built from its JSON object; an unsupported "type" is an
// error naming it and the file.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tune::text::pipeline {

// tokenizer.json is read into the unordered (std::map) JSON type: the project's ordered Json
// checks every insertion against all earlier keys, which is quadratic in a 150k-entry vocab.
using SpecJson = nlohmann::json;

// A pre-tokenized piece. at_start: the piece begins at offset 0 of the original input (Metaspace
// with prepend_scheme "first" adds its prefix only there).
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

// Adds the special tokens of a single sequence (encode with add_special_tokens).
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode(std::vector<std::string>& tokens) const = 0;
};

// `source` names the file in error messages. A null spec gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const SpecJson& spec, const std::string& source);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const SpecJson& spec, const std::string& source);
std::unique_ptr<PostProcessor> make_post_processor(const SpecJson& spec, const std::string& source);
std::unique_ptr<Decoder> make_decoder(const SpecJson& spec, const std::string& source);

}  // namespace tune::text::pipeline

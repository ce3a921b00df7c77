// tokenizer.ggml.* -> tokenizer.json, tokenizer_config.json, generation_config.json.
//
// The pre-tokenizer follows what llama.cpp's tokenizer.ggml.pre name means (llama-vocab.cpp,
// llm_tokenizer_bpe): its list of regexes applied one after another, written as the equivalent
// tokenizer.json steps. Notably "smollm" (and the StarCoder family it shares a case with) first
// isolates every \p{N} character, then applies GPT-2's split, which is tokenizers' Digits
// (individual_digits) followed by ByteLevel with its GPT-2 regex: the pipeline of SmolLM2's own
// tokenizer.json. transformers' GGUF conversion has no entry for it and uses GPT-2's split alone.
#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_set>

#include "io/safetensors_header.h"
#include "tune/core/error.h"
#include "tune/io/gguf_hf.h"

namespace tune::io {
namespace {

// llama.cpp token types (llama_token_type).
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Json byte_level(bool use_regex) {
  return Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

Json split_then_byte_level(const char* pattern) {
  return Json{{"type", "Sequence"},
              {"pretokenizers", Json::array({Json{{"type", "Split"},
                                                  {"pattern", Json{{"Regex", pattern}}},
                                                  {"behavior", "Isolated"},
                                                  {"invert", false}},
                                             byte_level(false)})}};
}

std::optional<int64_t> token_id(const GgufFile& file, const std::string& key, size_t n_tokens) {
  const auto v = file.get_uint(key);
  if (!v) return std::nullopt;
  if (*v >= n_tokens) {
    // convert_hf_to_gguf writes some ids as -1 cast to UINT32 when a model has none.
    if (*v == 0xFFFFFFFFull) return std::nullopt;
    fail(file.origin(), ": GGUF key \"", key, "\" is ", *v, ", past the ", n_tokens, " tokens");
  }
  return static_cast<int64_t>(*v);
}

}  // namespace

GgufPreTokenizer gguf_pre_tokenizer(std::string_view pre) {
  GgufPreTokenizer p;
  p.normalizer = nullptr;
  // llama.cpp: \p{N} isolated, then GPT-2's regex.
  static const std::set<std::string_view> digits_then_gpt2 = {"smollm",    "starcoder", "refact", "command-r",
                                                              "codeshell", "exaone",    "minerva-7b"};
  static const std::set<std::string_view> gpt2 = {"gpt2", "gpt-2", "mpt", "olmo", "jais", "trillion"};
  if (digits_then_gpt2.count(pre)) {
    p.pre_tokenizer = Json{{"type", "Sequence"},
                           {"pretokenizers", Json::array({Json{{"type", "Digits"}, {"individual_digits", true}},
                                                          byte_level(true)})}};
  } else if (gpt2.count(pre)) {
    p.pre_tokenizer = byte_level(true);
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "dbrx" || pre == "smaug-bpe") {
    p.pre_tokenizer = split_then_byte_level(kLlama3Pattern);
    p.ignore_merges = pre == "llama-bpe" || pre == "llama3";  // llama.cpp sets it for LLAMA3 only
  } else if (pre == "qwen2" || pre == "stablelm2") {
    p.pre_tokenizer = split_then_byte_level(kQwen2Pattern);
    if (pre == "qwen2") p.normalizer = Json{{"type", "NFC"}};
  } else {
    fail("GGUF tokenizer.ggml.pre \"", detail::printable(pre),
         "\" is not supported (supported: smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b, gpt2, "
         "mpt, olmo, jais, trillion, llama-bpe, dbrx, smaug-bpe, qwen2, stablelm2)");
  }
  return p;
}

namespace {

using Id = std::optional<int64_t>;

// ---- byte-level BPE (tokenizer.ggml.model gpt2) -> tokenizer.json

Json byte_level_tokenizer(const GgufFile& file, const std::vector<std::string>& tokens, const Json& added, Id bos,
                          Id eos) {
  const std::string& origin = file.origin();
  const auto merges = file.get_strings("tokenizer.ggml.merges");
  if (!merges) fail(origin, ": GGUF metadata key \"tokenizer.ggml.merges\" is missing (a gpt2 tokenizer needs it)");
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string& m = (*merges)[i];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() || m.find(' ', space + 1) != std::string::npos)
      fail(origin, ": GGUF merge ", i, " \"", detail::printable(m), "\" is not two tokens separated by one space");
    if (size_t bad = detail::find_invalid_utf8(m); bad != std::string::npos)
      fail(origin, ": GGUF merge ", i, " is not valid UTF-8 at byte ", bad);
  }
  const auto pre_name = file.get_string("tokenizer.ggml.pre");
  if (!pre_name)
    fail(origin, ": GGUF metadata key \"tokenizer.ggml.pre\" is missing, so the byte-level pre-tokenizer is unknown ",
         "(a file converted before mid-2024: reconvert it with a current convert_hf_to_gguf.py)");
  GgufPreTokenizer pre;
  try {
    pre = gguf_pre_tokenizer(*pre_name);
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
  // Vocabulary: token text -> id (the first id wins for a repeated text, which a byte-level
  // vocabulary should not have).
  // Appended to the ordered object's vector directly: its own insert searches the keys linearly,
  // which made a 150k-token vocabulary take tens of seconds.
  Json vocab = Json::object();
  {
    auto& entries = static_cast<Json::object_t::Container&>(vocab.get_ref<Json::object_t&>());
    entries.reserve(tokens.size());
    std::unordered_set<std::string_view> seen;
    for (size_t id = 0; id < tokens.size(); ++id)
      if (seen.insert(tokens[id]).second) entries.emplace_back(tokens[id], Json(id));
  }

  // BOS / EOS the file asks to add: a TemplateProcessing after the ByteLevel step.
  Json post = Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (bos || eos) {
    Json single = Json::array(), pair = Json::array(), specials = Json::object();
    auto special = [&](int64_t id) {
      const std::string& text = tokens[id];
      specials[text] = Json{{"id", text}, {"ids", Json::array({id})}, {"tokens", Json::array({text})}};
      return Json{{"SpecialToken", Json{{"id", text}, {"type_id", 0}}}};
    };
    auto seq = [](const char* which, int type_id) { return Json{{"Sequence", Json{{"id", which}, {"type_id", type_id}}}}; };
    if (bos) single.push_back(special(*bos));
    single.push_back(seq("A", 0));
    if (eos) single.push_back(special(*eos));
    pair = single;
    if (bos) pair.push_back(special(*bos));
    pair.push_back(seq("B", 1));
    if (eos) pair.push_back(special(*eos));
    post = Json{{"type", "Sequence"},
                {"processors", Json::array({post, Json{{"type", "TemplateProcessing"},
                                                       {"single", single},
                                                       {"pair", pair},
                                                       {"special_tokens", specials}}})}};
  }

  Json tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = added;
  tj["normalizer"] = pre.normalizer;
  tj["pre_tokenizer"] = pre.pre_tokenizer;
  tj["post_processor"] = post;
  tj["decoder"] = Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  tj["model"] = Json{{"type", "BPE"},
                     {"dropout", nullptr},
                     // No unknown token in a byte-level model: a byte whose character is not in the
                     // vocabulary is dropped, as llama.cpp's BPE session and GPT-2's tokenizer.json do
                     // (the file's unknown_token_id is kept in tokenizer_config.json).
                     {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"ignore_merges", pre.ignore_merges},
                     {"vocab", vocab},
                     {"merges", *merges}};
  return tj;
}

// ---- SentencePiece (tokenizer.ggml.model llama) -> tokenizer.model

// Protocol-buffer encoding, the few wire forms a ModelProto needs.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void tag(std::string& out, uint32_t field, uint32_t wire) { varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void field_varint(std::string& out, uint32_t field, int64_t v) {  // int32/bool/enum (negative: 10 bytes)
  tag(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}
void field_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  tag(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}
void field_float(std::string& out, uint32_t field, float v) {
  tag(out, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

// A ModelProto holding the vocabulary as llama.cpp tokenizes it (llm_tokenizer_spm: highest-score
// merges, spaces as U+2581, one added in front when add_space_prefix, byte pieces for the rest):
// pieces (text, score, type), trainer_spec (BPE, byte_fallback, special ids), normalizer_spec
// (identity, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces).
std::string sentencepiece_model(const GgufFile& file, const std::vector<std::string>& tokens,
                                const std::vector<int64_t>& types, Id unk, Id bos, Id eos, Id pad) {
  const std::string& origin = file.origin();
  const GgufValue* scores_value = file.find("tokenizer.ggml.scores");
  if (!scores_value || !scores_value->as_array())
    fail(origin, ": GGUF metadata key \"tokenizer.ggml.scores\" is missing (a llama tokenizer needs it)");
  const auto& scores = *scores_value->as_array();
  if (scores.size() != tokens.size())
    fail(origin, ": GGUF tokenizer.ggml.scores has ", scores.size(), " entries for ", tokens.size(), " tokens");
  bool has_bytes = false;
  std::string proto;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const auto score = scores[id].as_double();
    if (!score) fail(origin, ": GGUF tokenizer.ggml.scores[", id, "] is not a number");
    if (tokens[id].empty()) fail(origin, ": GGUF token ", id, " is empty (SentencePiece pieces must not be)");
    has_bytes = has_bytes || types[id] == kByte;
    std::string piece;
    field_bytes(piece, 1, tokens[id]);
    field_float(piece, 2, static_cast<float>(*score));
    field_varint(piece, 3, types[id]);
    field_bytes(proto, 1, piece);
  }
  std::string trainer;
  field_varint(trainer, 3, 2);  // model_type BPE
  field_varint(trainer, 35, has_bytes ? 1 : 0);
  field_varint(trainer, 40, unk.value_or(0));
  field_varint(trainer, 41, bos.value_or(-1));
  field_varint(trainer, 42, eos.value_or(-1));
  field_varint(trainer, 43, pad.value_or(-1));
  field_bytes(proto, 2, trainer);
  std::string normalizer;
  field_bytes(normalizer, 1, "identity");
  field_varint(normalizer, 3, file.get_bool("tokenizer.ggml.add_space_prefix").value_or(true) ? 1 : 0);
  field_varint(normalizer, 4, file.get_bool("tokenizer.ggml.remove_extra_whitespaces").value_or(false) ? 1 : 0);
  field_varint(normalizer, 5, 1);
  field_bytes(proto, 3, normalizer);
  return proto;
}

// ---- tokenizer_config.json and generation_config.json

void add_config_and_generation(const GgufFile& file, const std::vector<std::string>& tokens, bool spm,
                               const Json& added_decoder, Id unk, Id bos, Id eos, Id pad, Id eot, Id eom,
                               bool add_bos, bool add_eos, GgufHfTokenizer& out) {
  Json& tc = out.tokenizer_config;
  auto text_or_null = [&](const Id& id) { return id ? Json(tokens[*id]) : Json(nullptr); };
  tc["add_bos_token"] = add_bos;
  tc["add_eos_token"] = add_eos;
  tc["added_tokens_decoder"] = added_decoder;
  tc["bos_token"] = text_or_null(bos);
  tc["eos_token"] = text_or_null(eos);
  tc["pad_token"] = text_or_null(pad);
  tc["unk_token"] = text_or_null(unk);
  if (auto tmpl = file.get_string("tokenizer.chat_template")) {
    if (size_t bad = detail::find_invalid_utf8(*tmpl); bad != std::string::npos)
      fail(file.origin(), ": GGUF tokenizer.chat_template is not valid UTF-8 at byte ", bad);
    tc["chat_template"] = *tmpl;
  }
  tc["clean_up_tokenization_spaces"] = false;
  if (auto arch = file.get_string("general.architecture"))
    if (auto ctx = file.get_uint(*arch + ".context_length")) tc["model_max_length"] = *ctx;
  if (spm) tc["legacy"] = true;  // transformers: encode with the SentencePiece model as it is
  tc["tokenizer_class"] = spm ? "LlamaTokenizer" : "PreTrainedTokenizerFast";

  // Every end-of-generation id the file names: eos, then eot and eom when they differ.
  Json& gc = out.generation_config;
  gc = Json::object();
  if (bos) gc["bos_token_id"] = *bos;
  std::vector<int64_t> stops;
  for (const Id& id : {eos, eot, eom})
    if (id && std::find(stops.begin(), stops.end(), *id) == stops.end()) stops.push_back(*id);
  if (stops.size() == 1) gc["eos_token_id"] = stops[0];
  else if (!stops.empty()) gc["eos_token_id"] = stops;
  if (pad) gc["pad_token_id"] = *pad;
}

}  // namespace

GgufHfTokenizer gguf_hf_tokenizer(const GgufFile& file) {
  const std::string& origin = file.origin();
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) fail(origin, ": GGUF metadata key \"tokenizer.ggml.model\" is missing");
  const bool spm = *model == "llama";
  if (*model != "gpt2" && !spm)
    fail(origin, ": GGUF tokenizer.ggml.model \"", detail::printable(*model),
         "\" is not supported yet (supported: gpt2 = byte-level BPE, llama = SentencePiece BPE)");
  const auto tokens = file.get_strings("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) fail(origin, ": GGUF metadata key \"tokenizer.ggml.tokens\" is missing or empty");
  std::vector<int64_t> types = file.get_ints("tokenizer.ggml.token_type").value_or(std::vector<int64_t>{});
  if (!types.empty() && types.size() != tokens->size())
    fail(origin, ": GGUF tokenizer.ggml.token_type has ", types.size(), " entries for ", tokens->size(), " tokens");
  if (types.empty()) types.assign(tokens->size(), kNormal);
  for (size_t id = 0; id < types.size(); ++id)
    if (types[id] < kNormal || types[id] > kByte)
      fail(origin, ": GGUF tokenizer.ggml.token_type[", id, "] is ", types[id], " (expected 1..6)");
  // Texts must be valid UTF-8 to be written as JSON (and are, in both vocabulary kinds).
  for (size_t id = 0; id < tokens->size(); ++id) {
    const std::string& t = (*tokens)[id];
    if (size_t bad = detail::find_invalid_utf8(t); bad != std::string::npos)
      fail(origin, ": GGUF token ", id, " (", detail::printable(t), ") is not valid UTF-8 at byte ", bad);
  }

  // Control (and unknown) tokens are special added tokens; user-defined ones are added tokens that
  // are not special (convert_hf_to_gguf.py writes them so, with their text un-normalised).
  Json added = Json::array();
  Json added_decoder = Json::object();
  std::set<std::string> added_texts;
  for (size_t id = 0; id < tokens->size(); ++id) {
    if (types[id] != kControl && types[id] != kUserDefined && types[id] != kUnknown) continue;
    const std::string& t = (*tokens)[id];
    if (t.empty() || !added_texts.insert(t).second) continue;
    const bool special = types[id] != kUserDefined;
    Json entry = {{"id", id},          {"content", t},           {"single_word", false}, {"lstrip", false},
                  {"rstrip", false},   {"normalized", false},    {"special", special}};
    added.push_back(entry);
    Json dec = entry;
    dec.erase("id");
    added_decoder[std::to_string(id)] = dec;
  }

  const size_t n = tokens->size();
  const auto bos = token_id(file, "tokenizer.ggml.bos_token_id", n);
  const auto eos = token_id(file, "tokenizer.ggml.eos_token_id", n);
  const auto unk = token_id(file, "tokenizer.ggml.unknown_token_id", n);
  const auto pad = token_id(file, "tokenizer.ggml.padding_token_id", n);
  const auto eot = token_id(file, "tokenizer.ggml.eot_token_id", n);
  const auto eom = token_id(file, "tokenizer.ggml.eom_token_id", n);
  // llama.cpp's defaults: a SentencePiece vocabulary adds BOS, a byte-level one does not.
  const bool add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(spm);
  const bool add_eos = file.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos && !bos) fail(origin, ": tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set");
  if (add_eos && !eos) fail(origin, ": tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set");

  GgufHfTokenizer out;
  if (spm) {
    out.tokenizer = nullptr;
    out.tokenizer_model = sentencepiece_model(file, *tokens, types, unk, bos, eos, pad);
  } else {
    out.tokenizer = byte_level_tokenizer(file, *tokens, added, add_bos ? bos : std::nullopt,
                                         add_eos ? eos : std::nullopt);
  }
  add_config_and_generation(file, *tokens, spm, added_decoder, unk, bos, eos, pad, eot, eom, add_bos, add_eos, out);
  return out;
}

}  // namespace tune::io

// tokenizer.ggml.* -> tokenizer.json, tokenizer_config.json, generation_config.json.
//
// The pre-tokenizer follows what llama.cpp's tokenizer.ggml.pre name means (llama-vocab.cpp,
// llm_tokenizer_bpe): its list of regexes applied one after another, written as the equivalent
// tokenizer.json steps. Notably "smollm" (and the StarCoder family it shares a case with) first
// isolates every \p{N} character, then applies GPT-2's split, which is tokenizers' Digits
// (individual_digits) followed by ByteLevel with its GPT-2 regex: the pipeline of SmolLM2's own
// tokenizer.json. transformers' GGUF conversion has no entry for it and uses GPT-2's split alone.
#include <algorithm>
#include <optional>
#include <set>

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

GgufHfTokenizer gguf_hf_tokenizer(const GgufFile& file) {
  const std::string& origin = file.origin();
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) fail(origin, ": GGUF metadata key \"tokenizer.ggml.model\" is missing");
  if (*model != "gpt2")
    fail(origin, ": GGUF tokenizer.ggml.model \"", detail::printable(*model),
         "\" is not supported yet (supported: gpt2, byte-level BPE)");
  const auto tokens = file.get_strings("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) fail(origin, ": GGUF metadata key \"tokenizer.ggml.tokens\" is missing or empty");
  const auto merges = file.get_strings("tokenizer.ggml.merges");
  if (!merges) fail(origin, ": GGUF metadata key \"tokenizer.ggml.merges\" is missing (a gpt2 tokenizer needs it)");
  std::vector<int64_t> types = file.get_ints("tokenizer.ggml.token_type").value_or(std::vector<int64_t>{});
  if (!types.empty() && types.size() != tokens->size())
    fail(origin, ": GGUF tokenizer.ggml.token_type has ", types.size(), " entries for ", tokens->size(), " tokens");
  if (types.empty()) types.assign(tokens->size(), kNormal);
  const std::string pre_name = file.get_string("tokenizer.ggml.pre").value_or("default");
  GgufPreTokenizer pre;
  try {
    pre = gguf_pre_tokenizer(pre_name);
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }

  // Vocabulary: token text -> id (the first id wins for a repeated text, which a byte-level
  // vocabulary should not have). Texts must be valid UTF-8 to be written as JSON.
  Json vocab = Json::object();
  for (size_t id = 0; id < tokens->size(); ++id) {
    const std::string& t = (*tokens)[id];
    if (size_t bad = detail::find_invalid_utf8(t); bad != std::string::npos)
      fail(origin, ": GGUF token ", id, " (", detail::printable(t), ") is not valid UTF-8 at byte ", bad);
    if (!vocab.contains(t)) vocab[t] = id;
  }
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string& m = (*merges)[i];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() || m.find(' ', space + 1) != std::string::npos)
      fail(origin, ": GGUF merge ", i, " \"", detail::printable(m), "\" is not two tokens separated by one space");
    if (size_t bad = detail::find_invalid_utf8(m); bad != std::string::npos)
      fail(origin, ": GGUF merge ", i, " is not valid UTF-8 at byte ", bad);
  }

  // Control tokens are special added tokens; user-defined ones are added tokens that are not
  // special (convert_hf_to_gguf.py writes them so, with their text un-normalised).
  Json added = Json::array();
  Json added_decoder = Json::object();
  std::set<std::string> added_texts;
  for (size_t id = 0; id < tokens->size(); ++id) {
    if (types[id] != kControl && types[id] != kUserDefined) continue;
    const std::string& t = (*tokens)[id];
    if (t.empty() || !added_texts.insert(t).second) continue;
    const bool special = types[id] == kControl;
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
  const bool add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
  const bool add_eos = file.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos && !bos) fail(origin, ": tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set");
  if (add_eos && !eos) fail(origin, ": tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set");

  Json post = Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (add_bos || add_eos) {
    Json single = Json::array(), pair = Json::array(), specials = Json::object();
    auto special = [&](int64_t id, const std::string& text) {
      specials[text] = Json{{"id", text}, {"ids", Json::array({id})}, {"tokens", Json::array({text})}};
      return Json{{"SpecialToken", Json{{"id", text}, {"type_id", 0}}}};
    };
    auto seq = [](const char* which, int type_id) { return Json{{"Sequence", Json{{"id", which}, {"type_id", type_id}}}}; };
    if (add_bos) single.push_back(special(*bos, (*tokens)[*bos]));
    single.push_back(seq("A", 0));
    if (add_eos) single.push_back(special(*eos, (*tokens)[*eos]));
    pair = single;
    if (add_bos) pair.push_back(special(*bos, (*tokens)[*bos]));
    pair.push_back(seq("B", 1));
    if (add_eos) pair.push_back(special(*eos, (*tokens)[*eos]));
    post = Json{{"type", "Sequence"},
                {"processors", Json::array({post, Json{{"type", "TemplateProcessing"},
                                                       {"single", single},
                                                       {"pair", pair},
                                                       {"special_tokens", specials}}})}};
  }

  GgufHfTokenizer out;
  Json& tj = out.tokenizer;
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

  Json& tc = out.tokenizer_config;
  auto text_or_null = [&](const std::optional<int64_t>& id) { return id ? Json((*tokens)[*id]) : Json(nullptr); };
  tc["add_bos_token"] = add_bos;
  tc["add_eos_token"] = add_eos;
  tc["added_tokens_decoder"] = added_decoder;
  tc["bos_token"] = text_or_null(bos);
  tc["eos_token"] = text_or_null(eos);
  tc["pad_token"] = text_or_null(pad);
  tc["unk_token"] = text_or_null(unk);
  if (auto tmpl = file.get_string("tokenizer.chat_template")) tc["chat_template"] = *tmpl;
  tc["clean_up_tokenization_spaces"] = false;
  if (auto arch = file.get_string("general.architecture"))
    if (auto ctx = file.get_uint(*arch + ".context_length")) tc["model_max_length"] = *ctx;
  tc["tokenizer_class"] = "PreTrainedTokenizerFast";

  // Every end-of-generation id the file names: eos, then eot and eom when they differ.
  Json& gc = out.generation_config;
  if (bos) gc["bos_token_id"] = *bos;
  std::vector<int64_t> stops;
  for (const auto& id : {eos, eot, eom})
    if (id && std::find(stops.begin(), stops.end(), *id) == stops.end()) stops.push_back(*id);
  if (stops.size() == 1) gc["eos_token_id"] = stops[0];
  else if (!stops.empty()) gc["eos_token_id"] = stops;
  if (pad) gc["pad_token_id"] = *pad;
  return out;
}

}  // namespace tune::io

// tokenizer.json / tokenizer_config.json -> tokenizer.ggml.* (byte-level BPE, tokenizer.ggml.model
// gpt2), as convert_hf_to_gguf.py's _set_vocab_gpt2 and gguf's SpecialVocab write them.
//
// convert_hf_to_gguf.py names the pre-tokenizer by hashing the ids of a probe text (chkhsh) and
// looking the hash up in a table of known models. That needs the vocabulary's tokenizer and only
// knows published vocabularies; a fine-tuned or re-imported one (our GGUF importer's output) has
// the same steps but no entry of its own. tune compares the steps themselves with what each
// supported `pre` name means in llama.cpp (gguf_pre_tokenizer, the importer's table), so the name
// written is the one whose behaviour is the vocabulary's. tests/parity/test_gguf_export.py checks
// that the names agree with convert_hf_to_gguf.py's hash table on real vocabularies.
#include <algorithm>
#include <cctype>
#include <set>

#include "io/safetensors_header.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/io/gguf_export.h"
#include "tune/io/gguf_hf.h"

namespace tune::io {
namespace {

// llama.cpp token types (llama_token_type).
constexpr int64_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

// One line per pre-tokenizer step, with only the settings that change what it splits.
void flatten_steps(const Json& pre, std::vector<std::string>& out, const std::string& origin) {
  if (pre.is_null()) return;
  if (!pre.is_object() || !pre.contains("type") || !pre["type"].is_string())
    fail(origin, ": tokenizer.json pre_tokenizer step is not an object with a \"type\": ", pre.dump().substr(0, 200));
  const std::string type = pre["type"].get<std::string>();
  if (type == "Sequence") {
    for (const auto& step : pre.value("pretokenizers", Json::array())) flatten_steps(step, out, origin);
  } else if (type == "ByteLevel") {
    out.push_back(str("ByteLevel(use_regex=", pre.value("use_regex", true), ", add_prefix_space=",
                      pre.value("add_prefix_space", true), ")"));
  } else if (type == "Digits") {
    out.push_back(str("Digits(individual_digits=", pre.value("individual_digits", false), ")"));
  } else if (type == "Split") {
    const Json pattern = pre.value("pattern", Json::object());
    const std::string kind = pattern.contains("Regex") ? "Regex" : "String";
    out.push_back(str("Split(", kind, "=", pattern.value(kind, std::string()), ", behavior=",
                      pre.value("behavior", std::string()), ", invert=", pre.value("invert", false), ")"));
  } else {
    out.push_back(pre.dump());
  }
}

std::string join(const std::vector<std::string>& steps) {
  std::string out;
  for (const auto& s : steps) out += (out.empty() ? "" : " + ") + s;
  return out.empty() ? "(none)" : out;
}

// The text of a special token in tokenizer_config.json: a string or {"content": ...}.
template <class J>
std::optional<std::string> token_text(const J& v) {
  if (v.is_string()) return v.template get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].template get<std::string>();
  return std::nullopt;
}

// Whether tokenizer.json's post-processor adds a special token before / after the text (a
// TemplateProcessing whose "single" starts / ends with one), as gguf's SpecialVocab reads it.
std::pair<bool, bool> post_processor_adds(const Json& post) {
  if (!post.is_object()) return {false, false};
  if (post.value("type", std::string()) == "Sequence") {
    std::pair<bool, bool> out{false, false};
    for (const auto& p : post.value("processors", Json::array())) {
      const auto [bos, eos] = post_processor_adds(p);
      out.first = out.first || bos;
      out.second = out.second || eos;
    }
    return out;
  }
  if (post.value("type", std::string()) != "TemplateProcessing") return {false, false};
  const Json single = post.value("single", Json::array());
  if (!single.is_array() || single.empty()) return {false, false};
  return {single.front().contains("SpecialToken"), single.back().contains("SpecialToken")};
}

Json read_json_if_exists(const std::filesystem::path& p) {
  return std::filesystem::exists(p) ? read_json_file(p) : Json::object();
}

}  // namespace

std::string detect_gguf_pre_tokenizer(const Json& tj, const std::string& origin) {
  std::vector<std::string> ours;
  flatten_steps(tj.value("pre_tokenizer", Json()), ours, origin);
  const Json normalizer = tj.value("normalizer", Json());
  const bool ignore_merges = tj.value("model", Json::object()).value("ignore_merges", false);
  // Names llama.cpp distinguishes by behaviour, one per distinct step list (synonyms such as
  // starcoder for smollm split identically).
  for (const char* name : {"smollm", "gpt2", "llama-bpe", "qwen2"}) {
    const GgufPreTokenizer p = gguf_pre_tokenizer(name);
    std::vector<std::string> theirs;
    flatten_steps(p.pre_tokenizer, theirs, origin);
    if (theirs != ours) continue;
    // llama.cpp sets ignore_merges for llama-bpe only; the same regex without it is smaug-bpe.
    if (std::string_view(name) == "llama-bpe" && !ignore_merges) return "smaug-bpe";
    return name;
  }
  fail(origin, ": the tokenizer.json pre-tokenizer (", join(ours), ", normalizer ",
       normalizer.is_null() ? std::string("none") : normalizer.dump().substr(0, 80),
       ") matches no tokenizer.ggml.pre that GGUF export knows (smollm: Digits(individual_digits) + ",
       "ByteLevel(use_regex); gpt2: ByteLevel(use_regex); llama-bpe / qwen2: their Split regex + ",
       "ByteLevel); name it explicitly if llama.cpp knows an equivalent");
}

namespace {

GgufMetadata tokenizer_metadata(const std::filesystem::path& dir, int64_t vocab_size, const std::string& pre) {
  const auto tj_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj_path)) {
    if (std::filesystem::exists(dir / "tokenizer.model"))
      fail(dir.string(), ": a SentencePiece tokenizer.model without tokenizer.json is not supported by GGUF export yet ",
           "(only byte-level BPE vocabularies are)");
    fail(tj_path.string(), ": missing (GGUF export needs the tokenizer)");
  }
  const std::string origin = tj_path.string();
  // Parsed unordered: Json (ordered_json) finds keys by linear search, which makes a 150k-entry
  // vocabulary quadratic to read (tens of seconds for Qwen's).
  nlohmann::json tj;
  try {
    tj = nlohmann::json::parse(fs::read_file(tj_path));
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": invalid JSON: ", e.what());
  }
  if (!tj.is_object()) fail(origin, ": not a JSON object");
  const nlohmann::json& model = tj.contains("model") ? tj["model"] : nlohmann::json::object();
  if (model.value("type", std::string()) != "BPE")
    fail(origin, ": tokenizer model type \"", model.value("type", std::string("?")),
         "\" is not supported by GGUF export (only byte-level BPE)");
  if (model.value("byte_fallback", false))
    fail(origin, ": a BPE model with byte_fallback is a SentencePiece-style vocabulary (tokenizer.ggml.model llama), ",
         "which GGUF export does not support yet");
  const nlohmann::json normalizer = tj.value("normalizer", nlohmann::json());
  // Only normalizers llama.cpp's byte-level vocabularies agree with: none, or NFC (Qwen2's).
  if (!normalizer.is_null() && normalizer.value("type", std::string()) != "NFC")
    fail(origin, ": normalizer ", normalizer.dump().substr(0, 120), " has no GGUF counterpart");

  // The few small parts the detection compares, as the project's Json.
  const Json steps = {{"normalizer", Json::parse(normalizer.dump())},
                      {"pre_tokenizer", Json::parse(tj.value("pre_tokenizer", nlohmann::json()).dump())},
                      {"model", {{"ignore_merges", model.value("ignore_merges", false)}}}};
  const std::string pre_name = pre.empty() ? detect_gguf_pre_tokenizer(steps, origin) : pre;
  if (!pre.empty()) {  // an unknown override fails here, naming it
    try {
      (void)gguf_pre_tokenizer(pre);
    } catch (const Error& e) {
      fail(origin, ": ", e.what());
    }
  }

  // Tokens by id: the BPE vocabulary, then the added tokens (which may lie outside it).
  std::map<int64_t, std::string> by_id;
  const nlohmann::json& vocab = model.contains("vocab") ? model["vocab"] : nlohmann::json::object();
  if (!vocab.is_object() || vocab.empty()) fail(origin, ": model.vocab is missing or empty");
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(origin, ": vocab entry \"", detail::printable(text), "\" has no valid id");
    if (!by_id.emplace(id.get<int64_t>(), text).second)
      fail(origin, ": token id ", id.get<int64_t>(), " appears twice in model.vocab");
  }
  std::map<int64_t, bool> added;  // id -> special
  for (const auto& t : tj.value("added_tokens", nlohmann::json::array())) {
    const int64_t id = t.value("id", int64_t{-1});
    const auto content = token_text(t);
    if (id < 0 || !content) fail(origin, ": an added token without id or content: ", t.dump().substr(0, 120));
    by_id[id] = *content;
    added[id] = t.value("special", false);
  }
  const int64_t n_tok = by_id.rbegin()->first + 1;
  if (vocab_size > 0 && n_tok > vocab_size)
    fail(origin, ": the tokenizer has ids up to ", n_tok - 1, " but the model's embedding has ", vocab_size, " rows");
  const int64_t n = std::max(n_tok, vocab_size);

  GgufValue::Array tokens, types;
  tokens.reserve(n);
  types.reserve(n);
  for (int64_t id = 0; id < n; ++id) {
    const auto it = by_id.find(id);
    // convert_hf_to_gguf.py pads holes and the rows past the vocabulary the same way.
    if (it == by_id.end()) {
      tokens.push_back(GgufValue::string(str("[PAD", id, "]")));
      types.push_back(GgufValue::signed_int(GgufValueType::INT32, kUnused));
      continue;
    }
    tokens.push_back(GgufValue::string(it->second));
    const auto a = added.find(id);
    const int64_t type = a == added.end() ? kNormal : (a->second ? kControl : kUserDefined);
    types.push_back(GgufValue::signed_int(GgufValueType::INT32, type));
  }

  GgufValue::Array merges;
  const nlohmann::json& merge_list = model.contains("merges") ? model["merges"] : nlohmann::json::array();
  merges.reserve(merge_list.size());
  for (size_t i = 0; i < merge_list.size(); ++i) {
    const nlohmann::json& m = merge_list[i];
    if (m.is_string()) {
      merges.push_back(GgufValue::string(m.get<std::string>()));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      // GGUF stores "a b": a part holding a space could not be split back.
      const std::string a = m[0].get<std::string>(), b = m[1].get<std::string>();
      if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
        fail(origin, ": merge ", i, " has a part with a space, which GGUF's \"a b\" merges cannot hold");
      merges.push_back(GgufValue::string(a + " " + b));
    } else {
      fail(origin, ": merge ", i, " is neither \"a b\" nor [a, b]");
    }
  }

  // Special ids: tokenizer_config.json's token texts, then config.json's ids (SpecialVocab's order).
  const Json tc = read_json_if_exists(dir / "tokenizer_config.json");
  const Json config = read_json_if_exists(dir / "config.json");
  std::map<std::string, int64_t, std::less<>> text_to_id;
  for (const auto& [id, text] : by_id) text_to_id.emplace(text, id);
  auto special_id = [&](const char* kind) -> std::optional<int64_t> {
    const std::string key = str(kind, "_token");
    if (tc.contains(key) && !tc[key].is_null()) {
      const auto text = token_text(tc[key]);
      if (!text) fail((dir / "tokenizer_config.json").string(), ": \"", key, "\" is neither a string nor {content}");
      const auto it = text_to_id.find(*text);
      if (it == text_to_id.end())
        fail((dir / "tokenizer_config.json").string(), ": ", key, " \"", detail::printable(*text), "\" is not in the vocabulary");
      return it->second;
    }
    const Json id = config.value(key + "_id", Json());
    if (id.is_number_integer()) return id.get<int64_t>();
    if (id.is_array() && !id.empty() && id[0].is_number_integer()) return id[0].get<int64_t>();
    return std::nullopt;
  };

  GgufMetadata md;
  md.emplace_back("tokenizer.ggml.model", GgufValue::string("gpt2"));
  md.emplace_back("tokenizer.ggml.pre", GgufValue::string(pre_name));
  md.emplace_back("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(tokens)));
  md.emplace_back("tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, std::move(types)));
  md.emplace_back("tokenizer.ggml.merges", GgufValue::array(GgufValueType::STRING, std::move(merges)));
  for (const auto& [kind, key] : {std::pair{"bos", "bos_token_id"}, {"eos", "eos_token_id"},
                                  {"unk", "unknown_token_id"}, {"pad", "padding_token_id"}}) {
    if (auto id = special_id(kind)) {
      if (*id < 0 || *id >= n) fail(dir.string(), ": ", kind, " token id ", *id, " is outside the ", n, " tokens");
      md.emplace_back(str("tokenizer.ggml.", key), GgufValue::unsigned_int(GgufValueType::UINT32, *id));
    }
  }
  // Always written: llama.cpp's default when the key is absent depends on the pre name (true for
  // llama-bpe), so a file that says nothing could add a BOS the HF tokenizer never adds. The
  // tokenizer_config.json flag wins; otherwise what the post-processor does.
  const auto [post_bos, post_eos] = post_processor_adds(Json::parse(tj.value("post_processor", nlohmann::json()).dump()));
  for (const auto& [flag, from_post] : {std::pair{"add_bos_token", post_bos}, {"add_eos_token", post_eos}}) {
    const bool given = tc.contains(flag) && tc[flag].is_boolean();
    const bool value = given ? tc[flag].get<bool>() : from_post;
    if (given || value || std::string_view(flag) == "add_bos_token")
      md.emplace_back(str("tokenizer.ggml.", flag), GgufValue::boolean(value));
  }

  // The chat template: tokenizer_config.json's (a string, or a list of named templates), else
  // chat_template.jinja (where transformers >= 4.50 saves it).
  const Json tmpl = tc.value("chat_template", Json());
  if (tmpl.is_string()) {
    md.emplace_back("tokenizer.chat_template", GgufValue::string(tmpl.get<std::string>()));
  } else if (tmpl.is_array()) {
    for (const auto& t : tmpl) {
      const std::string name = t.value("name", std::string()), text = t.value("template", std::string());
      if (name.empty() || text.empty()) fail((dir / "tokenizer_config.json").string(), ": a chat_template entry lacks name or template");
      md.emplace_back(name == "default" ? std::string("tokenizer.chat_template") : "tokenizer.chat_template." + name,
                      GgufValue::string(text));
    }
  } else if (std::filesystem::exists(dir / "chat_template.jinja")) {
    md.emplace_back("tokenizer.chat_template", GgufValue::string(fs::read_file(dir / "chat_template.jinja")));
  }
  for (const auto& [key, value] : md)
    if (const auto* s = value.as_string(); s && detail::find_invalid_utf8(*s) != std::string::npos)
      fail(dir.string(), ": ", key, " is not valid UTF-8");
  return md;
}

}  // namespace

GgufMetadata gguf_tokenizer_metadata(const std::filesystem::path& dir, int64_t vocab_size, const std::string& pre) {
  try {
    return tokenizer_metadata(dir, vocab_size, pre);
  } catch (const nlohmann::json::exception& e) {
    fail(dir.string(), ": GGUF export: unexpected value in a tokenizer file: ", e.what());
  }
}

}  // namespace tune::io

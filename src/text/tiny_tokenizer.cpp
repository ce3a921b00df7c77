#include "tune/text/tiny_tokenizer.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "text/unicode.h"

namespace tune::text {

namespace {

// Qwen2-style split: letters with one leading non-letter, each digit alone, punctuation runs,
// newlines, whitespace.
constexpr const char* kSplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr const char* kChatTemplate =
    "{%- for message in messages %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

const char* const kSentences[] = {
    "The quick brown fox jumps over the lazy dog.",
    "A small model learns to add numbers one digit at a time.",
    "What is the sum of these two numbers? The answer is below.",
    "She said that the weather would be fine, and it was.",
    "We trained the model for three epochs and then we stopped.",
    "Please answer the question in one short sentence.",
    "The user asks a question and the assistant gives an answer.",
    "There are many ways to solve this problem; here is one of them.",
    "He wrote the result on the board, then he checked it again.",
    "Learning rate, batch size and warmup steps are the usual settings.",
    "If the loss goes down, the model is learning something useful.",
    "They read the story together in the evening by the window.",
    "It's a simple example, but it shows what we wanted to show.",
    "I don't know the answer, so I will think about it step by step.",
    "You're right: the second number is larger than the first one.",
    "Count the apples in the basket and write the total.",
    "Hello! How are you today? I am fine, thank you.",
    "This is the end of the text, and this is the start of another.",
    "The teacher explained the rule: carry the one when the sum is ten or more.",
    "Write a function that returns the sum of a list of numbers.",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "Question: what is the product of the numbers?\nAnswer: see the work below.\n",
    "The system prompt tells the assistant how it should behave.",
    "Good models are trained on clean data with careful evaluation.",
};

// A fixed pseudo-random sequence (64-bit LCG), so the corpus and the merges never change.
struct Lcg {
  uint64_t state = 0x2545F4914F6CDD1DULL;
  uint32_t next(uint32_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>((state >> 33) % bound);
  }
};

std::string training_corpus() {
  std::string corpus;
  for (int round = 0; round < 3; ++round)
    for (const char* s : kSentences) corpus += std::string(s) + "\n";
  Lcg rng;
  const char* ops[] = {" + ", " - ", " * "};
  for (int i = 0; i < 200; ++i) {
    int a = static_cast<int>(rng.next(1000)), b = static_cast<int>(rng.next(1000));
    int op = static_cast<int>(rng.next(3));
    long r = op == 0 ? a + b : op == 1 ? a - b : static_cast<long>(a) * b;
    corpus += "What is " + std::to_string(a) + ops[op] + std::to_string(b) + "? The answer is " +
              std::to_string(r) + ".\n";
  }
  return corpus;
}

bool has_digit(const std::string& byte_level_token) {
  for (char c : byte_level_token)
    if (c >= '0' && c <= '9') return true;
  return false;
}

struct Trained {
  std::vector<std::string> vocab;  // by id
  std::vector<std::pair<std::string, std::string>> merges;
};

// Plain BPE training: repeatedly merge the most frequent adjacent pair (ties: the smallest pair in
// byte order), never a pair with a digit.
Trained train(int num_merges) {
  Trained out;
  for (int b = 0; b < 256; ++b) out.vocab.push_back(unicode::byte_to_unicode(static_cast<uint8_t>(b)));

  std::string corpus = training_corpus();
  unicode::Regex split(kSplitRegex);
  std::map<std::string, int64_t> word_counts;
  for (auto [begin, end] : split.find_all(corpus)) {
    std::string mapped;
    for (size_t i = begin; i < end; ++i) mapped += unicode::byte_to_unicode(static_cast<uint8_t>(corpus[i]));
    ++word_counts[mapped];
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [word, count] : word_counts) {
    std::vector<std::string> symbols;
    size_t pos = 0;
    while (pos < word.size()) {
      size_t begin = pos;
      unicode::next_codepoint(word, pos);
      symbols.push_back(word.substr(begin, pos - begin));
    }
    words.emplace_back(std::move(symbols), count);
  }
  for (int m = 0; m < num_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pair_counts;
    for (const auto& [symbols, count] : words)
      for (size_t i = 0; i + 1 < symbols.size(); ++i)
        if (!has_digit(symbols[i]) && !has_digit(symbols[i + 1])) pair_counts[{symbols[i], symbols[i + 1]}] += count;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;  // a pair must occur at least twice
    for (const auto& [pair, count] : pair_counts) {
      if (count > best_count) {
        best = &pair;
        best_count = count;
      }
    }
    if (!best) break;
    auto [a, b] = *best;
    std::string merged = a + b;
    out.merges.emplace_back(a, b);
    out.vocab.push_back(merged);
    for (auto& [symbols, count] : words) {
      std::vector<std::string> next;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  return out;
}

Json added_token(int id, const std::string& content) {
  return Json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
              {"rstrip", false},   {"normalized", false}, {"special", true}};
}

}  // namespace

Json tiny_tokenizer_json() {
  static const Json cached = [] {
    Trained t = train(kTinyTokenizerMerges);
    Json vocab = Json::object();
    for (size_t i = 0; i < t.vocab.size(); ++i) vocab[t.vocab[i]] = static_cast<int>(i);
    Json merges = Json::array();
    for (const auto& [a, b] : t.merges) merges.push_back(Json::array({a, b}));
    const int first_special = static_cast<int>(t.vocab.size());
    Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
    Json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = Json::array({added_token(first_special, "<|endoftext|>"),
                                     added_token(first_special + 1, "<|im_start|>"),
                                     added_token(first_special + 2, "<|im_end|>")});
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers", Json::array({Json{{"type", "Split"},
                                            {"pattern", {{"Regex", kSplitRegex}}},
                                            {"behavior", "Isolated"},
                                            {"invert", false}},
                                       byte_level})}};
    j["post_processor"] = byte_level;
    j["decoder"] = byte_level;
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", vocab},
                  {"merges", merges}};
    return j;
  }();
  return cached;
}

Json tiny_tokenizer_config_json() {
  return Json{{"add_bos_token", false},
              {"add_eos_token", false},
              {"bos_token", nullptr},
              {"eos_token", "<|im_end|>"},
              {"pad_token", "<|endoftext|>"},
              {"unk_token", nullptr},
              {"clean_up_tokenization_spaces", false},
              {"model_max_length", 4096},
              {"tokenizer_class", "PreTrainedTokenizerFast"},
              {"chat_template", kChatTemplate}};
}

}  // namespace tune::text

#pragma once
// Chat rendering with loss masks: a conversation -> {input_ids, labels}, labels = -100 where the
// model is not trained.
//
// Method: for each assistant message i, render the messages before it with
// add_generation_prompt=true (P_i) and the messages up to and including it with
// add_generation_prompt=false (F_i). When every render extends the previous one (the template is
// "append-only"), F_i minus P_i is exactly what the model must produce for turn i: its content
// plus the end-of-turn token (<|im_end|>, <|eot_id|>, </s>). Each piece is tokenized on its own
// with add_special_tokens=false (the template carries BOS and the special tokens). Labels of an
// assistant span stop after its last end-of-turn token (eos / stop id, else last special token),
// so a trailing "\n" that the template prints after <|im_end|> is not trained.
// A template that rewrites earlier turns (Qwen3 strips earlier <think> blocks) is not append-only:
// then only the final assistant turn is labelled, with one warning per process.
// Torch-free.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/text/chat_template.h"
#include "tune/text/dataset_format.h"
#include "tune/text/tokenizer.h"

namespace tune::text {

constexpr int32_t kIgnoreIndex = -100;

// Renders [{role, content, ...}] through a chat template (see make_renderer in chat_mask_template.h).
using RenderFn = std::function<std::string(const Json& messages, bool add_generation_prompt)>;

// A RenderFn over a chat template. The context gets bos_token / eos_token (the tokenizer's special
// tokens as text, "" when absent) and the keys of `extra` (e.g. {"enable_thinking": false}).
// The template is copied into the function.
RenderFn make_renderer(const ChatTemplate& chat_template, const Tokenizer& tokenizer, Json extra = Json::object());

enum class MaskMode { assistant, all, last_turn };
MaskMode parse_mask_mode(const std::string& name);  // "assistant" | "all" | "last_turn"

// labels[t] is the label of input_ids[t] itself (not shifted): the loss shifts by one, as in HF.
struct TokenizedSample {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;  // kIgnoreIndex = not trained
  int64_t num_labels() const;   // labels != kIgnoreIndex
};

// Both sequences start with the same prompt tokens (labels -100); only the completions are labelled.
struct TokenizedPair {
  TokenizedSample chosen;
  TokenizedSample rejected;
  double margin = 0.0;
  bool has_margin = false;
  int64_t prompt_len = 0;
};

class ChatMasker {
 public:
  ChatMasker(const Tokenizer& tokenizer, RenderFn render, MaskMode mode = MaskMode::assistant);

  // A chat conversation, labelled per the mask mode.
  TokenizedSample chat(const std::vector<Message>& messages) const;
  // Plain text: encoded with the tokenizer's special tokens (BOS), EOS appended, all tokens trained.
  TokenizedSample text(const std::string& text) const;
  // An RL / generation prompt: rendered with add_generation_prompt=true, nothing labelled.
  TokenizedSample prompt(const std::vector<Message>& messages) const;
  // Preference pair: prompt + chosen / rejected completion, labels on the completions only.
  TokenizedPair pair(const Sample& sample) const;
  // chat / text / prompt samples (a preference sample is an error: use pair()).
  TokenizedSample sample(const Sample& sample) const;

  // True once a conversation needed the last-turn fallback (template not append-only).
  bool used_fallback() const { return used_fallback_; }

 private:
  struct Piece {
    std::string text;
    bool assistant;  // an assistant turn (trainable), else context
    bool last;       // the final assistant turn
  };
  std::vector<Piece> pieces(const std::vector<Message>& messages) const;
  void append(TokenizedSample& out, const std::string& text, bool train, bool trim) const;
  bool is_end_of_turn(int32_t id) const;

  const Tokenizer& tokenizer_;
  RenderFn render_;
  MaskMode mode_;
  mutable bool used_fallback_ = false;
};

// The sample as text with the trained parts between [[ and ]], for `tune data show`.
std::string show_masked(const Tokenizer& tokenizer, const TokenizedSample& sample);

}  // namespace tune::text

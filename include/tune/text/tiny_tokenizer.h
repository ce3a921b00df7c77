#pragma once
// A tiny byte-level BPE tokenizer for tests and toy models: the 256-symbol byte alphabet, a few
// hundred merges learned deterministically from a small built-in English/arithmetic corpus, and
// the ChatML special tokens. Digits are always single tokens (the split regex isolates every \p{N}
// character and no merge contains a digit). Loadable by the Hugging Face `tokenizers` library.
#include "tune/core/json.h"

namespace tune::text {

// tokenizer.json content: ids 0-255 are the bytes, then the merges' results, then the special
// tokens <|endoftext|> (pad), <|im_start|>, <|im_end|> (eos).
Json tiny_tokenizer_json();
// tokenizer_config.json content: eos <|im_end|>, pad <|endoftext|>, no BOS, a ChatML
// chat_template (Qwen2.5-like, without a default system message).
Json tiny_tokenizer_config_json();

// The number of merges the tiny tokenizer learns.
inline constexpr int kTinyTokenizerMerges = 256;

}  // namespace tune::text

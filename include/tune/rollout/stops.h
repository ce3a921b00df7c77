#pragma once
// Where a completion ends, decided on the host at the engine's stop checks: at its first EOS id,
// or at the first token whose text completes a stop string. Torch-free.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tune/text/tokenizer.h"

namespace tune::rollout {

enum class FinishReason { eos, stop_string, length };
std::string_view finish_reason_name(FinishReason reason);  // "eos" | "stop_string" | "length"

struct StopHit {
  int64_t length = 0;  // completion tokens kept: the EOS / stop-completing token included
  FinishReason reason = FinishReason::eos;
};

class StopScanner {
 public:
  // `tokenizer` decodes for the stop strings; it may be null when there are none.
  StopScanner(std::vector<int64_t> eos_ids, std::vector<std::string> stop_strings, const text::Tokenizer* tokenizer);

  // `tokens`: a completion so far; tokens[0, from) were scanned at earlier checks without a hit.
  // Returns the earliest end at or after `from` (an EOS wins a tie with a stop string), if any.
  std::optional<StopHit> scan(std::span<const int32_t> tokens, int64_t from) const;

  bool has_stop_strings() const { return !stop_strings_.empty(); }

 private:
  bool is_eos(int32_t id) const;
  bool holds_stop_string(std::string_view text) const;

  std::vector<int64_t> eos_ids_;
  std::vector<std::string> stop_strings_;
  const text::Tokenizer* tokenizer_;
  // Tokens decoded before `from` so that a stop string straddling the previous check is seen: every
  // token decodes to at least one byte, so a stop string of L bytes spans at most L tokens.
  int64_t lookback_ = 0;
};

}  // namespace tune::rollout

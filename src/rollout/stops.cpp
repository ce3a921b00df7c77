#include "tune/rollout/stops.h"

#include <algorithm>

#include "tune/core/error.h"

namespace tune::rollout {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::eos: return "eos";
    case FinishReason::stop_string: return "stop_string";
    case FinishReason::length: return "length";
  }
  return "length";
}

StopScanner::StopScanner(std::vector<int64_t> eos_ids, std::vector<std::string> stop_strings,
                         const text::Tokenizer* tokenizer)
    : eos_ids_(std::move(eos_ids)), stop_strings_(std::move(stop_strings)), tokenizer_(tokenizer) {
  if (!stop_strings_.empty() && !tokenizer_) usage_fail("rollout: stop strings need a tokenizer to decode completions");
  for (const auto& s : stop_strings_) {
    TUNE_CHECK(!s.empty(), "rollout: empty stop string");
    lookback_ = std::max<int64_t>(lookback_, static_cast<int64_t>(s.size()));
  }
}

bool StopScanner::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), static_cast<int64_t>(id)) != eos_ids_.end();
}

bool StopScanner::holds_stop_string(std::string_view text) const {
  for (const auto& s : stop_strings_)
    if (text.find(s) != std::string_view::npos) return true;
  return false;
}

std::optional<StopHit> StopScanner::scan(std::span<const int32_t> tokens, int64_t from) const {
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::optional<StopHit> hit;
  for (int64_t j = from; j < n; ++j) {
    if (is_eos(tokens[static_cast<size_t>(j)])) {
      hit = StopHit{j + 1, FinishReason::eos};
      break;
    }
  }
  if (stop_strings_.empty()) return hit;
  // Only what could end before the EOS matters; special tokens are decoded as their text, so a
  // stop string such as "<|im_end|>" can name one.
  const int64_t end = hit ? hit->length : n;
  const int64_t lo = std::max<int64_t>(0, from - lookback_);
  auto text_of = [&](int64_t stop) { return tokenizer_->decode(tokens.subspan(lo, stop - lo), false); };
  if (end <= from || !holds_stop_string(text_of(end))) return hit;
  for (int64_t j = from; j < end; ++j) {
    if (holds_stop_string(text_of(j + 1))) {
      // The EOS wins a tie: it ended the completion at the same token.
      if (hit && hit->length == j + 1) return hit;
      return StopHit{j + 1, FinishReason::stop_string};
    }
  }
  return hit;
}

}  // namespace tune::rollout

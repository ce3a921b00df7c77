#pragma once
// Held-out evaluation shared by the training commands: mean loss over label tokens, and exact
// match of greedy answers against reference answers (loss alone misleads: practitioners judge
// checkpoints by the task metric).
#include <string>
#include <vector>

#include "tune/data/collate.h"
#include "tune/model/causal_lm.h"
#include "tune/text/chat_mask.h"
#include "tune/text/tokenizer.h"

namespace tune::algo {

// Under data parallelism both are collectives: each rank evaluates its strided share of the items
// and the sums are added over ranks, so every rank returns the whole set's figures.

// Mean -log p over label tokens of `samples`, batch by batch, no gradients.
double eval_loss(model::CausalLM& model, const std::vector<text::TokenizedSample>& samples, int64_t batch_size,
                 int32_t pad_id);

struct ExactMatchItem {
  std::vector<int32_t> prompt_ids;  // rendered with the generation prompt
  std::string reference;
};

struct ExactMatchResult {
  double accuracy = 0;
  int64_t count = 0;
  int64_t max_new_tokens = 0;        // the generation limit used
  double hit_limit = 0;              // share of answers cut by that limit (no EOS before it)
  std::vector<std::string> answers;  // decoded, trimmed: of this rank's share under data parallelism
  std::vector<size_t> indices;       // the item each answer is of
};

// The answer length limit that cuts no reference: its longest tokenization, plus EOS, plus a margin
// of a quarter (at least 4 tokens) for answers a little longer than the references.
int64_t eval_generation_limit(const std::vector<ExactMatchItem>& items, const text::Tokenizer& tokenizer);

// Greedy answers compared to references after trimming whitespace. max_new_tokens 0: the limit of
// eval_generation_limit. A share of answers cut by the limit above 0 is logged as a warning.
ExactMatchResult exact_match(model::CausalLM& model, const text::Tokenizer& tokenizer,
                             const std::vector<ExactMatchItem>& items, int64_t max_new_tokens, int64_t batch_size);

// Chat samples whose last message is the assistant's answer -> (prompt without it, answer).
std::vector<ExactMatchItem> exact_match_items(const std::vector<text::Sample>& samples, const text::ChatMasker& masker,
                                              int64_t limit);

}  // namespace tune::algo

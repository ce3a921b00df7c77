#include "tune/algo/evaluate.h"

#include "tune/algo/logprobs.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"
#include "tune/train/communicator.h"

namespace tune::algo {

double eval_loss(model::CausalLM& model, const std::vector<text::TokenizedSample>& samples, int64_t batch_size,
                 int32_t pad_id) {
  torch::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  double total = 0, tokens = 0;
  const auto device = model.options().device();
  // Data parallelism: each rank scores its strided share; the sums are added over ranks.
  const std::vector<size_t> mine = train::strided_share(samples.size(), train::world());
  for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<const text::TokenizedSample*> chunk;
    for (size_t k = start; k < std::min(mine.size(), start + static_cast<size_t>(batch_size)); ++k)
      chunk.push_back(&samples[mine[k]]);
    data::Batch batch = to_device(data::collate(chunk, {.pad_id = pad_id}), device);
    torch::Tensor logp = label_logprobs(model, batch);  // [B, T]
    total -= logp.sum().item<double>();
    tokens += static_cast<double>(batch.num_label_tokens);
  }
  model.train(was_training);
  auto sums = train::all_reduce_sum(train::world(), {total, tokens});
  return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

int64_t eval_generation_limit(const std::vector<ExactMatchItem>& items, const text::Tokenizer& tokenizer) {
  int64_t longest = 0;
  for (const auto& item : items)
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer.encode(trim(item.reference)).size()));
  return longest + 1 + std::max<int64_t>(4, longest / 4);
}

ExactMatchResult exact_match(model::CausalLM& model, const text::Tokenizer& tokenizer,
                             const std::vector<ExactMatchItem>& items, int64_t max_new_tokens, int64_t batch_size) {
  ExactMatchResult result;
  if (items.empty()) return result;
  result.max_new_tokens = max_new_tokens > 0 ? max_new_tokens : eval_generation_limit(items, tokenizer);
  // Greedy, so no random number is drawn; the engine puts the model's train mode back itself.
  rollout::RolloutEngine engine(model, rollout::engine_options(tokenizer));
  rollout::SamplingConfig greedy;
  greedy.max_new_tokens = result.max_new_tokens;
  greedy.temperature = 0;
  torch::Generator unused = rollout::make_generator(model.options().device(), 0);
  int64_t correct = 0, cut = 0;
  // Data parallelism: each rank answers its strided share; the counts are added over ranks.
  const std::vector<size_t> mine = train::strided_share(items.size(), train::world());
  for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<std::vector<int32_t>> prompts;
    size_t end = std::min(mine.size(), start + static_cast<size_t>(batch_size));
    for (size_t k = start; k < end; ++k) prompts.push_back(items[mine[k]].prompt_ids);
    auto outputs = engine.rollout(prompts, 1, greedy, unused);
    for (size_t k = start; k < end; ++k) {
      std::string answer(trim(outputs.samples[k - start].text));
      correct += answer == trim(items[mine[k]].reference);
      cut += outputs.samples[k - start].finish == rollout::FinishReason::length;
      result.answers.push_back(std::move(answer));
      result.indices.push_back(mine[k]);
    }
  }
  auto counts = train::all_reduce_sum(train::world(), {static_cast<double>(correct), static_cast<double>(cut)});
  correct = static_cast<int64_t>(counts[0]);
  cut = static_cast<int64_t>(counts[1]);
  result.count = static_cast<int64_t>(items.size());
  result.accuracy = static_cast<double>(correct) / static_cast<double>(result.count);
  result.hit_limit = static_cast<double>(cut) / static_cast<double>(result.count);
  if (cut > 0)
    log::warn("eval: ", cut, " of ", result.count, " answers (", fixed(100 * result.hit_limit, 1),
              "%) reached the generation limit of ", result.max_new_tokens,
              " tokens without EOS and were cut; exact match counts them as wrong",
              max_new_tokens > 0 ? " (raise eval.max_new_tokens, or set it to 0 to derive it from the references)" : "");
  return result;
}

std::vector<ExactMatchItem> exact_match_items(const std::vector<text::Sample>& samples, const text::ChatMasker& masker,
                                              int64_t limit) {
  std::vector<ExactMatchItem> items;
  for (const auto& s : samples) {
    if (static_cast<int64_t>(items.size()) >= limit) break;
    if (s.kind == text::SampleKind::prompt && s.reference) {
      items.push_back({masker.prompt(s.messages).input_ids, *s.reference});
      continue;
    }
    if (s.kind != text::SampleKind::chat || s.messages.size() < 2 || s.messages.back().role != "assistant") continue;
    std::vector<text::Message> prompt(s.messages.begin(), s.messages.end() - 1);
    items.push_back({masker.prompt(prompt).input_ids, s.messages.back().content});
  }
  return items;
}

}  // namespace tune::algo

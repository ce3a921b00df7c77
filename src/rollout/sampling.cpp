#include "tune/rollout/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <limits>

namespace tune::rollout {

torch::Generator make_generator(torch::Device device, uint64_t seed) {
  torch::Generator gen;
  if (device.is_cuda()) gen = at::detail::getCUDAHooks().getNewGenerator(device.index());
  else gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  gen.set_current_seed(seed);
  return gen;
}

namespace {

// CTRL's rule: a seen token's negative logit is multiplied by the penalty, a positive one divided.
torch::Tensor penalise_repeats(const torch::Tensor& logits, const torch::Tensor& seen, double penalty) {
  auto penalised = torch::where(logits.lt(0), logits * penalty, logits / penalty);
  return torch::where(seen, penalised, logits);
}

// Keeps the k largest logits of each row (ties at the k-th value stay), -inf elsewhere.
torch::Tensor keep_top_k(const torch::Tensor& z, int64_t k) {
  auto kth = std::get<0>(z.topk(k, -1)).narrow(1, k - 1, 1);  // [n, 1]
  return z.masked_fill(z.lt(kth), -std::numeric_limits<float>::infinity());
}

// Drops the least likely tokens whose total probability stays within 1 - p; keeps at least one.
torch::Tensor keep_top_p(const torch::Tensor& z, double p) {
  const int64_t V = z.size(1);
  auto [sorted, order] = z.sort(-1, /*descending=*/false);
  auto drop_sorted = sorted.softmax(-1).cumsum(-1).le(1.0 - p);  // [n, V]
  drop_sorted.narrow(1, V - 1, 1).fill_(false);
  auto drop = torch::zeros_like(drop_sorted).scatter_(1, order, drop_sorted);
  return z.masked_fill(drop, -std::numeric_limits<float>::infinity());
}

}  // namespace

StepChoice choose_next(const torch::Tensor& logits_in, const torch::Tensor& seen, const SamplingConfig& s,
                       torch::Generator& generator) {
  // The policy's scaled logits, formed exactly as ops::token_logprob forms them.
  const bool greedy = s.temperature <= 0.0;
  const double T = greedy ? 1.0 : s.temperature;
  torch::Tensor z = logits_in.to(torch::kFloat32);  // [n, V]
  if (T != 1.0) z = z / T;
  torch::Tensor lse = torch::logsumexp(z, -1);  // [n]

  const bool penalise = s.repetition_penalty != 1.0 && seen.defined();
  torch::Tensor tokens;
  if (greedy) {
    tokens = (penalise ? penalise_repeats(z, seen, s.repetition_penalty) : z).argmax(-1);
  } else {
    torch::Tensor w = z;  // what the token is drawn from, scaled by 1/T
    const int64_t V = z.size(1);
    // The penalty acts on the raw logits before the temperature (Hugging Face's order); with
    // logits/T the sign is the same, so penalising z and dividing once is identical.
    if (penalise) w = penalise_repeats(w, seen, s.repetition_penalty);
    if (s.top_k > 0 && s.top_k < V) w = keep_top_k(w, s.top_k);
    if (s.top_p < 1.0) w = keep_top_p(w, s.top_p);
    torch::Tensor probs = w.is_same(z) ? (z - lse.unsqueeze(1)).exp_() : w.softmax(-1);  // [n, V]
    tokens = torch::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1);
  }
  torch::Tensor logprobs = z.gather(1, tokens.unsqueeze(1)).squeeze(1) - lse;  // [n]
  return {tokens, logprobs};
}

}  // namespace tune::rollout

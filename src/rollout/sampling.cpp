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

// One token per row of probs [n, V] (each row's sum > 0) by inverse CDF, one uniform per row.
// torch::multinomial draws V exponentials per row from the CPU generator (62 ms for 64 x 49k
// tokens: a fifth of a G = 8 rollout); this costs one cumulative sum. In two levels so that float32
// stays exact enough: the cumulative sum runs within blocks of 1024 tokens and the blocks' masses
// add up in float64, so a token's interval is off by float32 rounding of its block's mass, not of
// the whole row's. A token of probability 0 is never drawn (its interval is empty and u > 0).
torch::Tensor draw_inverse_cdf(const torch::Tensor& probs, torch::Generator& generator) {
  constexpr int64_t kBlock = 1024;
  const int64_t n = probs.size(0), V = probs.size(1);
  const int64_t blocks = (V + kBlock - 1) / kBlock;
  torch::Tensor p = probs.contiguous();
  if (blocks * kBlock != V) p = torch::constant_pad_nd(p, {0, blocks * kBlock - V}, 0.0);
  torch::Tensor within = p.view({n, blocks, kBlock}).cumsum(-1);                 // [n, blocks, 1024]
  torch::Tensor mass = within.select(2, kBlock - 1).to(torch::kFloat64);         // [n, blocks]
  torch::Tensor upto = mass.cumsum(-1);                                          // [n, blocks]
  torch::Tensor u = 1.0 - torch::rand({n, 1}, generator, torch::kFloat64);       // (0, 1]
  torch::Tensor x = u * upto.narrow(1, blocks - 1, 1);                           // [n, 1] in (0, total]
  torch::Tensor block = torch::searchsorted(upto, x).clamp_max(blocks - 1);      // [n, 1]: upto[b-1] < x <= upto[b]
  torch::Tensor before = torch::where(block.gt(0), upto.gather(1, (block - 1).clamp_min(0)), torch::zeros_like(x));
  torch::Tensor rest = torch::minimum(x - before, mass.gather(1, block));        // [n, 1] in (0, mass of the block]
  torch::Tensor row = within.gather(1, block.unsqueeze(2).expand({n, 1, kBlock})).squeeze(1).to(torch::kFloat64);
  torch::Tensor j = torch::searchsorted(row, rest).clamp_max(kBlock - 1);        // [n, 1]
  return (block * kBlock + j).squeeze(1);
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
    // On a GPU multinomial's draws are parallel and cheap; on the CPU they are most of the step.
    tokens = probs.is_cuda() ? torch::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1)
                             : draw_inverse_cdf(probs, generator);
  }
  torch::Tensor logprobs = z.gather(1, tokens.unsqueeze(1)).squeeze(1) - lse;  // [n]
  return {tokens, logprobs};
}

}  // namespace tune::rollout

#include "algo/grpo_round.h"

#include "tune/core/error.h"
#include "tune/ops/advantages.h"
#include "tune/ops/token_logprob.h"

namespace tune::algo {
namespace {

// x [N, T] padded on the right with `fill` to width T2 >= T.
torch::Tensor pad_to(const torch::Tensor& x, int64_t width, double fill) {
  if (!x.defined() || x.size(1) == width) return x;
  return torch::constant_pad_nd(x, {0, width - x.size(1)}, fill);
}

torch::Tensor cat_rows(const torch::Tensor& a, const torch::Tensor& b, int64_t width, double fill) {
  if (!a.defined() || !b.defined()) return {};
  return torch::cat({pad_to(a, width, fill), pad_to(b, width, fill)}, 0);
}

torch::Tensor rows_of(const torch::Tensor& x, const torch::Tensor& index) {
  return x.defined() ? x.index_select(0, index) : x;
}

}  // namespace

RoundRows RoundRows::select(const std::vector<int64_t>& rows) const {
  RoundRows out;
  if (rows.empty()) return out;
  auto index = torch::tensor(rows, torch::kInt64).to(input_ids.device());
  out.input_ids = rows_of(input_ids, index);
  out.attention_mask = rows_of(attention_mask, index);
  out.labels = rows_of(labels, index);
  out.mask = rows_of(mask, index);
  out.sampler_logp = rows_of(sampler_logp, index);
  out.advantages = rows_of(advantages, index);
  out.old_logp = rows_of(old_logp, index);
  out.ref_logp = rows_of(ref_logp, index);
  for (int64_t r : rows) out.samples.push_back(samples[static_cast<size_t>(r)]);
  return out;
}

void RoundRows::append(const RoundRows& o) {
  if (o.size() == 0) return;
  if (size() == 0) {
    *this = o;
    return;
  }
  const int64_t width = std::max(input_ids.size(1), o.input_ids.size(1));
  input_ids = cat_rows(input_ids, o.input_ids, width, 0);
  attention_mask = cat_rows(attention_mask, o.attention_mask, width, 0);
  labels = cat_rows(labels, o.labels, width, static_cast<double>(ops::kIgnoreIndex));
  mask = cat_rows(mask, o.mask, width, 0);
  sampler_logp = cat_rows(sampler_logp, o.sampler_logp, width, 0);
  advantages = torch::cat({advantages, o.advantages}, 0);
  old_logp = cat_rows(old_logp, o.old_logp, width, 0);
  ref_logp = cat_rows(ref_logp, o.ref_logp, width, 0);
  samples.insert(samples.end(), o.samples.begin(), o.samples.end());
}

ScoredRound score_round(const rollout::RolloutBatch& r, const std::vector<reward::Sample>& samples,
                        const reward::Scores& scores, const std::vector<int64_t>& prompt_indices,
                        const RoundOptions& options) {
  const int64_t N = r.size(), G = options.group_size;
  TUNE_CHECK(N % G == 0 && static_cast<int64_t>(scores.total.size()) == N, "grpo: a rollout of ", N,
             " rows does not hold whole groups of ", G, " (or its scores are ", scores.total.size(), ")");
  const auto device = r.input_ids.device();

  // Rewards and which samples were judged: a null reward takes no part in any group statistic.
  std::vector<float> reward_values(static_cast<size_t>(N), 0.f);
  std::vector<uint8_t> judged(static_cast<size_t>(N), 0);
  for (int64_t i = 0; i < N; ++i)
    if (const auto& s = scores.total[static_cast<size_t>(i)]) {
      reward_values[static_cast<size_t>(i)] = static_cast<float>(*s);
      judged[static_cast<size_t>(i)] = 1;
    }
  auto rewards = torch::tensor(reward_values);                                     // [N]
  auto valid = torch::tensor(std::vector<int64_t>(judged.begin(), judged.end())).to(torch::kBool);  // [N]

  ops::GroupAdvantageOptions ao;
  ao.group_size = G;
  ao.baseline = ops::parse_group_baseline(options.baseline);
  ao.scale = ops::parse_reward_scale(options.scale);
  ao.eps = options.std_eps;
  auto advantages = ops::group_advantages(rewards, ao, valid).to(torch::kFloat32);  // [N]
  auto flat = ops::zero_variance_groups(rewards, G, valid);                        // [N / G] bool

  ScoredRound out;
  out.groups = N / G;
  out.zero_variance_groups = flat.sum().item<int64_t>();

  RoundRows rows;
  rows.input_ids = r.input_ids;
  rows.attention_mask = r.attention_mask;
  auto completion = r.completion_mask.to(torch::kBool);  // [N, T]
  rows.labels = torch::where(completion, r.input_ids, torch::full({}, ops::kIgnoreIndex, r.input_ids.options()));
  auto row_counts = valid.clone();
  if (options.mask_truncated) row_counts = row_counts & r.truncated.to(torch::kCPU).logical_not();
  rows.mask = completion.to(torch::kFloat32) * row_counts.to(device).to(torch::kFloat32).unsqueeze(1);
  // The sampler's log-probs [N, Tc] moved to the token they belong to: column P_r + j.
  const int64_t T = r.input_ids.size(1), Tc = r.logprobs.size(1);
  rows.sampler_logp = torch::zeros({N, T}, r.logprobs.options());
  if (Tc > 0) {
    auto columns = (r.prompt_lengths.unsqueeze(1) + torch::arange(Tc, r.prompt_lengths.options()).unsqueeze(0))
                       .clamp_max(T - 1);                                              // [N, Tc]
    auto values = r.logprobs * r.completion_token_mask.to(r.logprobs.scalar_type());   // 0 past L_r
    rows.sampler_logp.scatter_add_(1, columns, values);
  }
  rows.advantages = advantages.to(device);

  auto adv_host = advantages.to(torch::kCPU);
  for (int64_t i = 0; i < N; ++i) {
    const auto& info = r.samples[static_cast<size_t>(i)];
    RoundSample s;
    s.prompt_index = prompt_indices[static_cast<size_t>(info.prompt_index)];
    s.prompt = samples[static_cast<size_t>(i)].prompt;
    s.completion = info.text;
    s.reward = scores.total[static_cast<size_t>(i)];
    for (const auto& term : scores.terms)
      if (const auto& v = term.values[static_cast<size_t>(i)]) s.terms[term.name] = *v;
    s.advantage = adv_host[i].item<double>();
    s.length = info.completion_length;
    s.truncated = info.truncated;
    s.finish = std::string(rollout::finish_reason_name(info.finish));
    rows.samples.push_back(std::move(s));
  }

  if (!options.drop_zero_variance) {
    out.rows = std::move(rows);
    return out;
  }
  std::vector<int64_t> keep;
  auto flat_host = flat.to(torch::kCPU);
  for (int64_t g = 0; g < N / G; ++g)
    if (!flat_host[g].item<bool>())
      for (int64_t k = 0; k < G; ++k) keep.push_back(g * G + k);
  out.rows = rows.select(keep);
  return out;
}

}  // namespace tune::algo

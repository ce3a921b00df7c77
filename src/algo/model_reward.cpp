#include "tune/algo/model_reward.h"

#include <algorithm>
#include <numeric>

#include "tune/algo/policy.h"
#include "tune/algo/reward_head.h"
#include "tune/algo/training_text.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/data/collate.h"
#include "tune/text/chat_mask.h"
#include "tune/text/chat_template.h"
#include "tune/text/tokenizer.h"

namespace tune::algo {

namespace {

text::ChatTemplate template_of(const std::filesystem::path& dir, const std::string& name, const std::string& key) {
  if (!name.empty()) {
    try {
      return text::builtin_chat_template(name);
    } catch (const Error& e) {
      usage_fail("config error: ", key, ".chat_template: ", e.what());
    }
  }
  if (auto t = text::load_chat_template(dir)) return *t;
  usage_fail("config error: ", key, ": the reward model ", dir.string(), " has no chat template; set ", key,
             ".chat_template to a built-in (", join(text::builtin_chat_template_names(), ", "), ")");
}

struct Normalisation {
  reward::Normalizer normalizer;
  std::string description;  // for the start-up log line
};

Normalisation normalizer_for(const reward::ModelOptions& o, const Json& stats, const std::string& key) {
  const bool has_stats = stats.contains("mean") && stats.contains("std") && stats["mean"].is_number() &&
                         stats["std"].is_number() && stats["std"].get<double>() > 0.0;
  if (o.normalize == "none") return {reward::Normalizer::none(), "none (raw scores)"};
  if (o.normalize == "fixed")
    return {reward::Normalizer::fixed(o.mean, o.std), str("fixed (mean ", o.mean, ", std ", o.std, ")")};
  if (o.normalize == "running" || (o.normalize == "auto" && !has_stats))
    return {reward::Normalizer::running(), str("running mean / std", o.normalize == "auto" ? " (auto: no reward_stats.json statistics)" : "")};
  if (!has_stats)
    usage_fail("config error: ", key, ".normalize is stats, but ", o.path,
               "/reward_stats.json has no mean and std > 0 (use fixed with mean/std, or running)");
  const double mean = stats["mean"].get<double>(), std = stats["std"].get<double>();
  return {reward::Normalizer::fixed(mean, std), str("stats (mean ", fixed(mean, 4), ", std ", fixed(std, 4),
                                                    " from reward_stats.json", stats.contains("source") && stats["source"].is_string()
                                                        ? ", " + stats["source"].get<std::string>() + " pairs" : "", ")")};
}

// The sample's prompt as messages: its conversation, or its prompt as one user message.
std::vector<text::Message> prompt_messages(const reward::Sample& s, size_t index) {
  std::vector<text::Message> out;
  if (s.messages.is_null()) {
    out.push_back({"user", s.prompt});
    return out;
  }
  if (!s.messages.is_array() || s.messages.empty())
    fail("reward model: sample ", index, ": messages must be a non-empty list of {role, content}");
  for (const auto& m : s.messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("reward model: sample ", index, ": each message needs string \"role\" and \"content\"");
    text::Message msg{m["role"].get<std::string>(), m["content"].get<std::string>()};
    for (auto it = m.begin(); it != m.end(); ++it)
      if (it.key() != "role" && it.key() != "content") msg.extra[it.key()] = it.value();
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace

struct ModelReward::Impl {
  reward::ModelOptions options;
  std::string key;
  torch::Device device{torch::kCPU};
  LoadedRewardModel rm;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<text::ChatMasker> masker;
  int32_t pad_id = 0;
  reward::Normalizer normalizer = reward::Normalizer::none();
  reward::MetricSum last_raw;  // the last score() call's raw scores
  const lora::AdapterRoles* roles = nullptr;  // on a shared base: its adapters are the role named `key`

  std::vector<int32_t> encode(const reward::Sample& s, size_t index) const {
    // The same rendering as `tune rm` training and `tune score`: prompt + the completion as the
    // assistant turn, through the pair path (the completion's end-of-turn token included).
    text::Sample pair;
    pair.kind = text::SampleKind::preference;
    pair.messages = prompt_messages(s, index);
    pair.chosen = {{"assistant", s.completion}};
    pair.rejected = pair.chosen;
    pair.where = str(key, ": sample ", index);
    std::vector<int32_t> ids = masker->pair(pair).chosen.input_ids;
    if (static_cast<int64_t>(ids.size()) > options.max_seq_len)
      ids.erase(ids.begin(), ids.end() - options.max_seq_len);  // keep the end: the completion
    return ids;
  }
};

ModelReward::ModelReward(const reward::ModelOptions& options, const std::string& key, SharedBase* shared)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.options = options;
  m.key = key;
  if (!std::filesystem::exists(options.path) && !options.made_by.empty())
    usage_fail("config error: ", key, ".path: ", options.path, " does not exist: run `", options.made_by, "` first");
  if (!std::filesystem::exists(options.path))
    usage_fail("config error: ", key, ".path: reward model directory not found: ", options.path);
  try {
    m.device = resolve_device(options.device);
  } catch (const UsageError&) {
    usage_fail("config error: ", key, ".device: '", options.device, "' is not available (auto, cpu, cuda, cuda:N)");
  }
  m.rm = load_reward_model(options.path, resolve_dtype(options.dtype, m.device), m.device, options.base,
                           shared ? shared->model : nullptr);
  if (shared) {
    shared->roles.add(key, m.rm.lora);
    m.roles = &shared->roles;
  }
  m.tokenizer = text::Tokenizer::load(m.rm.tokenizer_dir);
  m.masker = std::make_unique<text::ChatMasker>(
      *m.tokenizer, text::make_renderer(template_of(m.rm.tokenizer_dir, options.chat_template, key), *m.tokenizer));
  m.pad_id = m.rm.stats.contains("pad_token_id") && m.rm.stats["pad_token_id"].is_number_integer()
                 ? m.rm.stats["pad_token_id"].get<int32_t>()
                 : pad_id_of(*m.tokenizer);
  Normalisation n = normalizer_for(options, m.rm.stats, key);
  m.normalizer = n.normalizer;
  log::info(key, ": reward model ", options.path, " on ", m.device.str(), ", normalize ", n.description);
}

ModelReward::~ModelReward() = default;

std::vector<int32_t> ModelReward::encode(const reward::Sample& sample) const { return impl_->encode(sample, 0); }

std::vector<double> ModelReward::raw_scores(std::span<const reward::Sample> batch) {
  auto& m = *impl_;
  // On a shared base: this model's adapters, in eval mode (no LoRA dropout), the policy's mode after.
  std::optional<lora::AdapterRoles::Use> as_rm;
  const bool was_training = m.rm.model->is_training();
  if (m.roles) {
    as_rm.emplace(m.roles->use(m.key));
    m.rm.model->eval();
  }
  std::vector<text::TokenizedSample> seqs(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) seqs[i].input_ids = m.encode(batch[i], i);
  for (auto& s : seqs) s.labels.assign(s.input_ids.size(), text::kIgnoreIndex);  // collate wants labels
  // Longest first, so each chunk pads to lengths close to its own.
  std::vector<size_t> order(batch.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return seqs[a].input_ids.size() > seqs[b].input_ids.size(); });
  std::vector<double> out(batch.size());
  torch::NoGradGuard no_grad;
  data::CollateOptions opts;
  opts.pad_id = m.pad_id;
  const size_t chunk = static_cast<size_t>(m.options.batch_size);
  for (size_t start = 0; start < order.size(); start += chunk) {
    std::vector<const text::TokenizedSample*> rows;
    for (size_t j = start; j < std::min(order.size(), start + chunk); ++j) rows.push_back(&seqs[order[j]]);
    data::Batch b = data::to_device(data::collate(rows, opts), m.device);
    torch::Tensor r = sequence_rewards(*m.rm.model, m.rm.score, b).to(torch::kCPU).to(torch::kFloat64);  // [B]
    auto acc = r.accessor<double, 1>();
    for (size_t j = 0; j < rows.size(); ++j) out[order[start + j]] = acc[static_cast<int64_t>(j)];
  }
  if (m.roles) m.rm.model->train(was_training);
  return out;
}

std::vector<reward::Score> ModelReward::score(std::span<const reward::Sample> batch) {
  std::vector<double> raw = raw_scores(batch);
  impl_->last_raw = {};
  for (double r : raw) {
    impl_->last_raw.sum += r;
    impl_->last_raw.count += 1.0;
  }
  std::vector<double> normalised = impl_->normalizer.apply(raw);
  return {normalised.begin(), normalised.end()};
}

reward::MetricSums ModelReward::details() const { return {{"raw", impl_->last_raw}}; }

const reward::Normalizer& ModelReward::normalizer() const { return impl_->normalizer; }

Json ModelReward::state() const { return impl_->normalizer.state(); }

void ModelReward::restore(const Json& state) { impl_->normalizer.restore(state); }

reward::Composite build_reward(const reward::RewardConfig& config, const std::string& prefix, SharedBase* shared) {
  return reward::build(
      config,
      [shared](const reward::ModelOptions& options, const std::string& key) -> std::unique_ptr<reward::Reward> {
        return std::make_unique<ModelReward>(options, key, shared);
      },
      prefix);
}

}  // namespace tune::algo

#include "algo/ppo_critic.h"

#include "tune/algo/model_source.h"
#include "tune/algo/policy.h"
#include "tune/algo/reward_head.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/core/json.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/lora/peft.h"
#include "tune/model/config.h"
#include "tune/model/weights.h"

namespace tune::algo {
namespace stdfs = std::filesystem;

std::string critic_reward_model_path(const PpoConfig& cfg) {
  if (!cfg.critic.path.empty()) return cfg.critic.path;
  for (const auto& term : cfg.reward.terms)
    if (term.kind == "model") return term.model.path;
  return "";
}

namespace {

// The LoRA settings a PEFT adapter_config.json describes (to save the adapters it started from again).
lora::LoraConfig lora_config_of(const stdfs::path& dir) {
  Json j = read_json_file(dir / "adapter_config.json");
  lora::LoraConfig c;
  c.r = j.value("r", c.r);
  c.alpha = j.value("lora_alpha", c.alpha);
  c.use_rslora = j.value("use_rslora", false);
  if (j.contains("target_modules") && j["target_modules"].is_array())
    c.targets = j["target_modules"].get<std::vector<std::string>>();
  return c;
}

// The reward model must read the policy's token ids as it read its own.
void check_same_tokenizer(const stdfs::path& rm_dir, const stdfs::path& rm_tokenizer_dir, const std::string& policy_dir,
                          const model::ModelConfig& rm_config) {
  auto policy_config = model::ModelConfig::load(policy_dir);
  if (policy_config.vocab_size != rm_config.vocab_size)
    usage_fail("config error: critic.init reward_model: the reward model ", rm_dir.string(), " has a vocabulary of ",
               rm_config.vocab_size, " tokens, the policy ", policy_dir, " ", policy_config.vocab_size,
               ": the critic reads the policy's token ids (use critic.init: policy)");
  const auto a = rm_tokenizer_dir / "tokenizer.json", b = stdfs::path(policy_dir) / "tokenizer.json";
  if (stdfs::exists(a) && stdfs::exists(b) && sha256_file_hex(a) != sha256_file_hex(b))
    usage_fail("config error: critic.init reward_model: the reward model's tokenizer.json (", a.string(),
               ") differs from the policy's (", b.string(), "): the critic reads the policy's token ids "
               "(use critic.init: policy, or a reward model trained on the policy's base)");
}

}  // namespace

std::optional<lora::AdapterRoles::Use> Critic::use() const {
  if (!roles) return std::nullopt;
  return roles->use("critic");
}

Critic load_critic(const PpoConfig& cfg, const torch::Device& device, torch::ScalarType dtype, int32_t pad_id,
                   SharedBase* shared) {
  Critic c;
  c.pad_id = pad_id;
  const auto& section = cfg.critic;
  if (section.init == "reward_model") {
    const std::string path = critic_reward_model_path(cfg);
    if (path.empty())
      usage_fail("config error: critic.init reward_model needs critic.path or a reward term of kind model "
                 "(or use critic.init: policy)");
    LoadedRewardModel rm = load_reward_model(path, dtype, device, "", shared ? shared->model : nullptr);
    check_same_tokenizer(path, rm.tokenizer_dir, model_dir(cfg.model).string(), rm.model->config());
    c.model = rm.model;
    c.head = rm.score.to(torch::kFloat32).clone().set_requires_grad(true);
    const bool lora_layout = stdfs::exists(stdfs::path(path) / "adapter_config.json");
    if (lora_layout) {
      // A LoRA reward model: its adapters go on training over the frozen base (whatever critic.method).
      c.lora = std::move(rm.lora);
      c.lora_config = lora_config_of(path);
      Json adapter = read_json_file(stdfs::path(path) / "adapter_config.json");
      c.base_dir = adapter.value("base_model_name_or_path", std::string());
      if (section.method == "full")
        log::warn("critic: the reward model ", path, " is a LoRA adapter: the critic trains its adapters (method lora)");
    } else {
      c.base_dir = path;
    }
    c.source = str("the reward model ", path, lora_layout ? " (LoRA)" : " (full)");
  } else {
    c.model = shared ? shared->model : model::load_pretrained(model_dir(cfg.model).string(), dtype, device);
    c.head = init_score_head(*c.model, static_cast<uint64_t>(cfg.seed) + 7, device);
    c.base_dir = model_dir(cfg.model).string();
    c.source = "the policy's initial weights, a fresh value head";
  }
  c.model->set_gradient_checkpointing(cfg.model.gradient_checkpointing);
  if (c.lora.empty() && section.method == "lora") {
    c.lora = lora::inject_lora(*c.model, section.lora);
    if (c.lora.empty()) usage_fail("config error: critic.lora.targets matched no projection of the critic");
    c.lora_config = section.lora;
  }
  if (!c.lora.empty()) {
    lora::freeze_base(*c.model);
    for (auto& [key, t] : c.lora.trainable()) c.trainable.emplace_back("critic." + key, t);
  } else {
    for (auto& item : c.model->named_parameters(/*recurse=*/true)) {
      if (item.key() == "lm_head.weight") {
        item.value().set_requires_grad(false);  // a value model has no LM head
        continue;
      }
      item.value().set_requires_grad(true);
      c.trainable.emplace_back("critic." + item.key(), item.value());
    }
  }
  c.trainable.emplace_back("critic.score.weight", c.head);
  if (shared) {
    TUNE_CHECK(!c.lora.empty(), "critic: a shared base needs the critic's LoRA adapters");
    shared->roles.add("critic", c.lora);
    c.roles = &shared->roles;
    c.source += ", on the shared base";
  }
  int64_t n = 0;
  for (const auto& [name, t] : c.trainable) n += t.numel();
  log::info("critic: ", c.source, "; ", human_count(static_cast<double>(n)), " trainable (",
            c.lora.empty() ? "full" : "lora", ")");
  c.model->train();
  return c;
}

torch::Tensor critic_values(Critic& critic, const data::Batch& batch) {
  auto as_critic = critic.use();
  model::ForwardArgs args;
  args.input_ids = batch.input_ids;  // [B, T], right padded: positions 0..T-1, no mask needed
  torch::Tensor hidden = critic.model->forward_hidden(args);  // [B, T, D]
  const int64_t B = hidden.size(0), T = hidden.size(1);
  // Position t-1's state values token t: [B, T-1] shifted right by one column.
  torch::Tensor v = torch::matmul(hidden.narrow(1, 0, T - 1).to(torch::kFloat32), critic.head.t()).squeeze(-1);
  return torch::cat({torch::zeros({B, 1}, v.options()), v}, 1);
}

void save_critic(Critic& critic, const stdfs::path& dir) {
  RewardModelFiles files;
  files.base_dir = critic.base_dir;
  files.pad_id = critic.pad_id;
  files.stats = Json{{"kind", "ppo_critic"}, {"note", "per-token value model; scores are values, not rewards"}};
  save_reward_model(*critic.model, critic.lora, critic.lora_config, critic.head, files, dir);
}

}  // namespace tune::algo

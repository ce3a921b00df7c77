#include "algo/ppo_shared_base.h"

#include <filesystem>
#include <set>

#include "algo/ppo_critic.h"
#include "tune/algo/model_source.h"
#include "tune/algo/policy.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/core/json.h"
#include "tune/core/str.h"

namespace tune::algo {
namespace stdfs = std::filesystem;

namespace {

std::set<std::string> weight_files(const stdfs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : stdfs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") out.insert(e.path().filename().string());
  return out;
}

// The base a LoRA-layout directory adapts ("" when `dir` is not a LoRA adapter).
std::string adapter_base(const std::string& dir, const std::string& base_override) {
  const stdfs::path config = stdfs::path(dir) / "adapter_config.json";
  if (!stdfs::exists(config)) return "";
  if (!base_override.empty()) return base_override;
  Json j = read_json_file(config);
  return j.value("base_model_name_or_path", std::string());
}

}  // namespace

bool same_base_model(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  const auto ca = stdfs::canonical(a, ea), cb = stdfs::canonical(b, eb);
  if (ea || eb) return false;
  if (ca == cb) return true;
  if (!stdfs::exists(ca / "config.json") || !stdfs::exists(cb / "config.json")) return false;
  if (read_json_file(ca / "config.json") != read_json_file(cb / "config.json")) return false;
  const auto files = weight_files(ca);
  if (files.empty() || files != weight_files(cb)) return false;
  for (const auto& f : files)
    if (sha256_file_hex(ca / f) != sha256_file_hex(cb / f)) return false;
  return true;
}

SharedBasePlan plan_shared_base(const PpoConfig& cfg, bool use_critic) {
  SharedBasePlan plan;
  if (cfg.ppo.shared_base == "off") {
    plan.why_not = "ppo.shared_base is off";
    return plan;
  }
  const std::string base = model_dir(cfg.model).string();
  const auto device = resolve_device(cfg.model.device);
  const auto dtype = resolve_dtype(cfg.model.dtype, device);
  std::vector<std::string> roles{"policy"};
  auto why = [&]() -> std::string {
    if (cfg.method != "lora") return "the policy is fully fine-tuned (method full)";
    if (cfg.engine.merge_lora) return "engine.merge_lora would merge the policy's adapters into the shared weights";
    if (use_critic) {
      if (cfg.critic.init == "reward_model") {
        const std::string path = critic_reward_model_path(cfg);
        if (path.empty() || !stdfs::exists(path)) return "the critic's reward model is not there yet";
        const std::string b = adapter_base(path, "");
        if (b.empty()) return str("the critic starts from the full reward model ", path);
        if (!same_base_model(b, base))
          return str("the critic's reward model ", path, " adapts ", b, ", not the policy's base ", base);
      } else if (cfg.critic.method != "lora") {
        return "the critic is fully trained (critic.method full)";
      }
      roles.push_back("critic");
    }
    for (const auto& term : cfg.reward.terms) {
      if (term.kind != "model") continue;
      const std::string name = str("reward model '", term.term_name(), "'");
      if (!stdfs::exists(term.model.path)) return str("the ", name, " ", term.model.path, " is not there yet");
      const std::string b = adapter_base(term.model.path, term.model.base);
      if (b.empty()) return str("the ", name, " ", term.model.path, " is a full model");
      if (!same_base_model(b, base)) return str("the ", name, " adapts ", b, ", not the policy's base ", base);
      const auto d = resolve_device(term.model.device);
      if (d != device || resolve_dtype(term.model.dtype, d) != dtype)
        return str("the ", name, " runs on another device or dtype than the policy");
      roles.push_back(name);
    }
    if (roles.size() < 2) return "only the policy adapts the base";
    return "";
  }();
  if (!why.empty()) {
    if (cfg.ppo.shared_base == "on") usage_fail("config error: ppo.shared_base is on, but ", why);
    plan.why_not = why;
    return plan;
  }
  plan.share = true;
  plan.roles = roles;
  return plan;
}

}  // namespace tune::algo

#include "tune/algo/reward_head.h"

#include <cstring>

#include "tune/algo/policy.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/io/safetensors.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"

namespace tune::algo {
namespace stdfs = std::filesystem;

namespace {

constexpr const char* kScoreKey = "score.weight";
constexpr const char* kPeftScoreKey = "base_model.model.score.weight";

// A CPU float32 copy of a floating tensor of a safetensors file.
torch::Tensor read_float(const io::SafetensorsFile& file, const io::TensorInfo& info) {
  torch::ScalarType type;
  switch (info.dtype) {
    case io::DType::F32: type = torch::kFloat32; break;
    case io::DType::BF16: type = torch::kBFloat16; break;
    case io::DType::F16: type = torch::kFloat16; break;
    case io::DType::F64: type = torch::kFloat64; break;
    default: fail(file.origin(), ": tensor '", info.name, "' has unsupported dtype ", io::dtype_name(info.dtype));
  }
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto bytes = file.data(info);
  auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t.to(torch::kFloat32);
}

io::DType io_dtype(torch::ScalarType t) {
  if (t == torch::kFloat32) return io::DType::F32;
  if (t == torch::kBFloat16) return io::DType::BF16;
  if (t == torch::kFloat16) return io::DType::F16;
  if (t == torch::kFloat64) return io::DType::F64;
  fail("reward model: cannot save dtype ", c10::toString(t));
}

std::string dtype_config_name(torch::ScalarType t) {
  if (t == torch::kBFloat16) return "bfloat16";
  if (t == torch::kFloat16) return "float16";
  return "float32";
}

struct Entries {
  std::vector<std::pair<std::string, torch::Tensor>> items;  // CPU, contiguous, kept alive
  std::vector<io::TensorBytes> bytes() const {
    std::vector<io::TensorBytes> out;
    for (const auto& [name, t] : items)
      out.push_back({name, io_dtype(t.scalar_type()), std::vector<uint64_t>(t.sizes().begin(), t.sizes().end()),
                     std::span<const uint8_t>(static_cast<const uint8_t*>(t.data_ptr()), t.nbytes())});
    return out;
  }
};

Json load_stats(const stdfs::path& dir) {
  return stdfs::exists(dir / "reward_stats.json") ? read_json_file(dir / "reward_stats.json") : Json::object();
}

}  // namespace

torch::Tensor last_token_index(const torch::Tensor& attention_mask) {
  return (attention_mask.sum(1) - 1).clamp_min(0).to(torch::kLong);  // [B]
}

torch::Tensor sequence_rewards(model::CausalLM& model, const torch::Tensor& score, const data::Batch& batch) {
  model::ForwardArgs args;
  args.input_ids = batch.input_ids;  // [B, T], right-padded: causal attention never sees the pads
  args.position_ids = batch.position_ids;
  torch::Tensor hidden = model.forward_hidden(args);  // [B, T, D]
  torch::Tensor idx = last_token_index(batch.attention_mask).to(hidden.device());
  torch::Tensor rows = torch::arange(hidden.size(0), idx.options());
  torch::Tensor last = hidden.index({rows, idx}).to(torch::kFloat32);  // [B, D]
  return torch::matmul(last, score.to(last.device()).t()).squeeze(1);  // [B]
}

torch::Tensor init_score_head(const model::CausalLM& model, uint64_t seed, const torch::Device& device) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor w = at::normal(0.0, model.config().initializer_range, {1, model.config().hidden_size}, gen);
  return w.to(torch::kFloat32).to(device).set_requires_grad(true);
}

std::string sequence_classification_class(const model::ModelConfig& config) {
  std::string name(model::arch_class_name(config.arch));
  const std::string suffix = "ForCausalLM";
  if (name.ends_with(suffix)) name = name.substr(0, name.size() - suffix.size());
  return name + "ForSequenceClassification";
}

void save_reward_model(model::CausalLM& model, const lora::LoraSet& lora, const lora::LoraConfig& lora_config,
                       const torch::Tensor& score, const RewardModelFiles& files, const stdfs::path& dir) {
  torch::NoGradGuard no_grad;
  Entries entries;
  Json stats = files.stats;
  stats["pad_token_id"] = files.pad_id;
  stats["base_model"] = stdfs::absolute(files.base_dir).string();
  const auto tmp = fs::temp_sibling(dir);
  fs::ensure_directory(tmp);
  try {
    if (lora.empty()) {
      torch::ScalarType type = torch::kFloat32;
      for (auto& item : model.named_parameters(/*recurse=*/true)) {
        if (item.key() == "lm_head.weight") continue;  // a classifier has no LM head
        type = item.value().scalar_type();
        entries.items.emplace_back(item.key(), item.value().detach().to(torch::kCPU).contiguous());
      }
      entries.items.emplace_back(kScoreKey, score.detach().to(torch::kCPU).to(type).contiguous());
      io::write_safetensors(tmp / "model.safetensors", entries.bytes(), {{"format", "pt"}});
      Json config = model.config().to_json();
      config["architectures"] = Json::array({sequence_classification_class(model.config())});
      config["id2label"] = {{"0", "LABEL_0"}};
      config["label2id"] = {{"LABEL_0", 0}};
      config["pad_token_id"] = files.pad_id;
      config["torch_dtype"] = dtype_config_name(type);
      write_json_file(tmp / "config.json", config);
      stats["layout"] = "full";
    } else {
      for (const auto& [key, t] : lora.trainable()) entries.items.emplace_back(key, t.detach().to(torch::kCPU).contiguous());
      entries.items.emplace_back(kPeftScoreKey, score.detach().to(torch::kCPU).to(torch::kFloat32).contiguous());
      io::write_safetensors(tmp / "adapter_model.safetensors", entries.bytes(), {{"format", "pt"}});
      Json config = lora::adapter_config_json(lora_config, lora, stdfs::absolute(files.base_dir).string());
      config["task_type"] = "SEQ_CLS";
      config["modules_to_save"] = Json::array({"score"});
      write_json_file(tmp / "adapter_config.json", config);
      stats["layout"] = "lora";
    }
    write_json_file(tmp / "reward_stats.json", stats);
    copy_tokenizer_files(files.base_dir, tmp);
    fs::replace_directory(tmp, dir);
  } catch (...) {
    std::error_code ec;
    stdfs::remove_all(tmp, ec);
    throw;
  }
}

LoadedRewardModel load_reward_model(const stdfs::path& dir, torch::ScalarType dtype, torch::Device device,
                                    const std::string& base_override, std::shared_ptr<model::CausalLM> onto) {
  const bool shared_base = onto != nullptr;
  LoadedRewardModel out;
  out.stats = load_stats(dir);
  if (stdfs::exists(dir / "adapter_config.json")) {
    Json config = read_json_file(dir / "adapter_config.json");
    std::string base = base_override;
    if (base.empty() && config.contains("base_model_name_or_path") && config["base_model_name_or_path"].is_string())
      base = config["base_model_name_or_path"].get<std::string>();
    if (base.empty() || !stdfs::exists(stdfs::path(base) / "config.json"))
      usage_fail(dir.string(), ": LoRA reward model whose base model '", base, "' is not a local model directory (pass --base)");
    out.model = onto ? std::move(onto) : model::load_pretrained(base, dtype, device);
    // The score head travels as a saved module; the rest is a plain LoRA adapter.
    config["modules_to_save"] = nullptr;
    config["task_type"] = nullptr;
    lora::AdapterFiles files;
    files.config = lora::PeftAdapterConfig::from_json(config, (dir / "adapter_config.json").string());
    auto st = io::SafetensorsFile::open(dir / "adapter_model.safetensors");
    const std::string prefix = "base_model.model.";
    for (const auto& info : st.tensors()) {
      if (info.name == kPeftScoreKey) {
        out.score = read_float(st, info);
        continue;
      }
      auto strip = [&](const std::string& suffix) -> std::optional<std::string> {
        if (!info.name.starts_with(prefix) || !info.name.ends_with(suffix)) return std::nullopt;
        return info.name.substr(prefix.size(), info.name.size() - prefix.size() - suffix.size());
      };
      if (auto m = strip(".lora_A.weight")) files.lora_A[*m] = read_float(st, info);
      else if (auto m2 = strip(".lora_B.weight")) files.lora_B[*m2] = read_float(st, info);
      else fail(st.origin(), ": unexpected tensor '", info.name, "' in a reward-model adapter");
    }
    out.lora = lora::attach_adapter(*out.model, files, dir.string());
    out.tokenizer_dir = stdfs::exists(dir / "tokenizer.json") || stdfs::exists(dir / "tokenizer.model") ? dir : stdfs::path(base);
  } else {
    TUNE_CHECK(!onto, dir.string(), ": a full reward model cannot go onto a shared base");
    // A classifier has no LM head: build the decoder with a tied head so none is expected.
    auto config = model::ModelConfig::load(dir);
    config.tie_word_embeddings = true;
    out.model = std::make_shared<model::CausalLM>(config, torch::TensorOptions().dtype(dtype).device(device));
    const auto previous = log::level();
    log::set_level(log::Level::error);  // score.weight is read below, not an unexpected tensor
    try {
      model::load_weights(*out.model, dir);
    } catch (...) {
      log::set_level(previous);
      throw;
    }
    log::set_level(previous);
    auto st = io::SafetensorsFile::open(dir / "model.safetensors");
    if (const auto* info = st.find(kScoreKey)) out.score = read_float(st, *info);
    out.tokenizer_dir = dir;
  }
  if (!out.score.defined()) fail(dir.string(), ": no ", kScoreKey, " (not a reward model saved with one label)");
  if (out.score.dim() != 2 || out.score.size(0) != 1 || out.score.size(1) != out.model->config().hidden_size)
    fail(dir.string(), ": score.weight must be [1, ", out.model->config().hidden_size, "], got ", out.score.sizes());
  out.score = out.score.to(device);
  if (!shared_base) out.model->eval();  // a shared base keeps its mode: the policy's trainer owns it
  return out;
}

}  // namespace tune::algo

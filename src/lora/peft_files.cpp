// adapter_model.safetensors + adapter_config.json: save, read, attach.
#include <map>
#include <set>

#include "tensor_bytes.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/str.h"
#include "tune/io/safetensors.h"
#include "tune/lora/peft.h"

namespace tune::lora {
namespace {

constexpr std::string_view kPrefix = "base_model.model.";
constexpr std::string_view kA = ".lora_A.weight";
constexpr std::string_view kB = ".lora_B.weight";

// Explains the tensor kinds PEFT writes that a plain LoRA reader cannot use.
std::string why_unsupported(const std::string& key) {
  if (key.find("lora_embedding_") != std::string::npos) return "embedding LoRA is not supported";
  if (key.find("lora_magnitude_vector") != std::string::npos) return "DoRA (use_dora) is not supported";
  if (key.find(".lora_A.") != std::string::npos || key.find(".lora_B.") != std::string::npos)
    return "expected <module>.lora_A.weight / lora_B.weight (LoRA biases and named adapters are not supported)";
  return "not a LoRA weight (modules_to_save / full weights are not supported)";
}

}  // namespace

void save_adapter(const LoraSet& set, const LoraConfig& config, const std::filesystem::path& dir,
                  const std::string& base_model_name_or_path) {
  TUNE_CHECK(!set.empty(), "save_adapter: no adapters to save (", dir.string(), ")");
  std::vector<torch::Tensor> holders;
  std::vector<io::TensorBytes> entries;
  auto trainable = set.trainable();
  holders.resize(trainable.size());
  for (size_t i = 0; i < trainable.size(); ++i)
    entries.push_back(detail::float32_entry(trainable[i].first, trainable[i].second, holders[i]));

  auto tmp = fs::temp_sibling(dir);
  try {
    fs::ensure_directory(tmp);
    write_json_file(tmp / "adapter_config.json", adapter_config_json(config, set, base_model_name_or_path));
    io::write_safetensors(tmp / "adapter_model.safetensors", entries, {{"format", "pt"}});
    fs::replace_directory(tmp, dir);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

AdapterFiles read_adapter(const std::filesystem::path& dir) {
  auto config_path = dir / "adapter_config.json";
  auto weights_path = dir / "adapter_model.safetensors";
  if (!std::filesystem::exists(config_path))
    fail(dir.string(), " is not a PEFT adapter directory: adapter_config.json is missing");
  if (!std::filesystem::exists(weights_path)) {
    if (std::filesystem::exists(dir / "adapter_model.bin"))
      fail(weights_path.string(), " is missing (only the pickle adapter_model.bin is there; re-save the adapter "
           "with safe_serialization=True)");
    fail(weights_path.string(), " is missing");
  }
  AdapterFiles out;
  out.config = PeftAdapterConfig::from_json(read_json_file(config_path), config_path.string());

  auto file = io::SafetensorsFile::open(weights_path);
  for (const auto& info : file.tensors()) {
    const std::string& key = info.name;
    bool is_a = key.ends_with(kA), is_b = key.ends_with(kB);
    if (!key.starts_with(kPrefix) || !(is_a || is_b))
      fail(weights_path.string(), ": tensor ", key, ": ", why_unsupported(key));
    std::string module = key.substr(kPrefix.size(), key.size() - kPrefix.size() - kA.size());
    auto tensor = detail::read_tensor(file, info).to(torch::kFloat32);
    if (tensor.dim() != 2) fail(weights_path.string(), ": tensor ", key, " has shape ", tensor.sizes(), ", expected 2-D");
    (is_a ? out.lora_A : out.lora_B)[module] = tensor;
  }
  if (out.lora_A.empty()) fail(weights_path.string(), ": holds no LoRA weights");
  for (const auto& [module, a] : out.lora_A) {
    auto it = out.lora_B.find(module);
    if (it == out.lora_B.end()) fail(weights_path.string(), ": ", peft_key(module, 'A'), " has no matching ", peft_key(module, 'B'));
    const auto& b = it->second;
    int64_t r = out.config.rank_for(module);
    if (a.size(0) != r || b.size(1) != r)
      fail(weights_path.string(), ": ", peft_key(module, 'A'), " ", a.sizes(), " / lora_B ", b.sizes(),
           " do not have rank ", r, " (r / rank_pattern in adapter_config.json)");
  }
  for (const auto& [module, b] : out.lora_B)
    if (!out.lora_A.count(module)) fail(weights_path.string(), ": ", peft_key(module, 'B'), " has no matching ", peft_key(module, 'A'));
  return out;
}

LoraSet attach_adapter(model::CausalLM& model, const AdapterFiles& files, const std::string& origin) {
  std::map<std::string, model::Projection> by_name;
  for (auto& p : model.projections()) by_name.emplace(p.name, p);
  // Checkpoint order, like inject_lora, so trainable() lists tensors the same way.
  std::vector<LoraModule> modules;
  for (const auto& [module, a] : files.lora_A)
    if (!by_name.count(module))
      fail(origin, ": ", peft_key(module, 'A'), " names module ", module, ", which the base model does not have");
  for (auto& p : model.projections()) {
    auto it = files.lora_A.find(p.name);
    if (it == files.lora_A.end()) continue;
    const auto& a = it->second;            // [r, in]
    const auto& b = files.lora_B.at(p.name);  // [out, r]
    if (a.size(1) != p.in_features)
      fail(origin, ": ", peft_key(p.name, 'A'), " has shape ", a.sizes(), " but the base projection has in_features ",
           p.in_features, " (adapter made for another model?)");
    if (b.size(0) != p.out_features)
      fail(origin, ": ", peft_key(p.name, 'B'), " has shape ", b.sizes(), " but the base projection has out_features ",
           p.out_features, " (adapter made for another model?)");
    if (p.linear->adapter()) fail(origin, ": projection ", p.name, " already has an adapter");
    modules.push_back({p.name, p.linear, nullptr});
  }
  freeze_base(model);
  for (auto& m : modules) {
    const auto& a = files.lora_A.at(m.name);
    const auto& b = files.lora_B.at(m.name);
    m.adapter = std::make_shared<LoraAdapter>(a.size(1), b.size(0), a.size(0), files.config.scale_for(m.name),
                                              files.config.dropout, "none", m.linear->weight().device());
    m.adapter->assign(a, b, str(origin, ": ", m.name));
    m.adapter->set_host(m.linear);
    m.linear->set_adapter(m.adapter);
  }
  return LoraSet(std::move(modules));
}

LoraSet load_adapter(model::CausalLM& model, const std::filesystem::path& dir) {
  return attach_adapter(model, read_adapter(dir), (dir / "adapter_model.safetensors").string());
}

}  // namespace tune::lora

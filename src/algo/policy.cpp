#include "tune/algo/policy.h"

#include "tune/train/communicator.h"

#include "tune/algo/model_source.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"

namespace tune::algo {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    usage_fail("config error: model.device: unknown device '", name, "' (auto, cpu, cuda, cuda:N)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    usage_fail("config error: model.device is '", name, "' but CUDA is not available in this build or machine");
  return device;
}

torch::ScalarType resolve_dtype(const std::string& name, const torch::Device& device) {
  if (name == "auto") return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  usage_fail("config error: model.dtype: unknown dtype '", name, "'");
}

void set_threads(int64_t threads) {
  if (threads > 0) {
    torch::set_num_threads(static_cast<int>(threads));
    torch::set_num_interop_threads(1);
  }
}

Policy load_policy(const ModelSection& section, const std::string& method, const lora::LoraConfig& lora_config) {
  const std::filesystem::path dir = model_dir(section);
  torch::Device device = resolve_device(section.device);
  torch::ScalarType dtype = resolve_dtype(section.dtype, device);
  Policy policy;
  policy.base_dir = dir;
  policy.model = model::load_pretrained(dir, dtype, device);
  policy.model->set_gradient_checkpointing(section.gradient_checkpointing);
  if (method == "lora") {
    policy.lora = lora::inject_lora(*policy.model, lora_config);
    if (policy.lora.empty()) usage_fail("config error: lora.targets matched no projection of ", section.path);
    policy.trainable = policy.lora.trainable();
  } else if (method == "full") {
    policy.trainable = train::trainable_only(train::named_parameters_of(*policy.model));
  } else {
    usage_fail("config error: method must be lora or full, got '", method, "'");
  }
  int64_t total = 0, trainable = 0;
  for (const auto& p : policy.model->parameters()) total += p.numel();
  for (const auto& [name, t] : policy.trainable) trainable += t.numel();
  if (method == "lora") total += trainable;
  log::info("model ", section.path, ": ", human_count(static_cast<double>(total)), " parameters, ",
            human_count(static_cast<double>(trainable)), " trainable (", method, "), ",
            c10::toString(dtype), " on ", device.str());
  return policy;
}

void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "chat_template.jinja"}) {
    auto src = from / name;
    if (!std::filesystem::exists(src)) continue;
    std::error_code ec;
    std::filesystem::copy_file(src, to / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) fail("cannot copy ", src.string(), " to ", to.string(), ": ", ec.message());
  }
}

namespace {

void export_on_this_rank(Policy& policy, const lora::LoraConfig& lora_config, const std::filesystem::path& dir) {
  if (policy.use_lora()) {
    // Adapter and tokenizer files (which make the adapter directory self-describing) are gathered in
    // a temporary directory and published by one rename: `dir` is never an adapter without its
    // tokenizer, and a failure leaves a previous export intact.
    const auto tmp = fs::temp_sibling(dir);
    try {
      lora::save_adapter(policy.lora, lora_config, tmp, std::filesystem::absolute(policy.base_dir).string());
      copy_tokenizer_files(policy.base_dir, tmp);
      fs::replace_directory(tmp, dir);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(tmp, ec);
      throw;
    }
  } else {
    model::SaveOptions options;
    options.copy_files_from = policy.base_dir;
    model::save_pretrained(*policy.model, dir, options);
  }
}

}  // namespace

void export_policy(Policy& policy, const lora::LoraConfig& lora_config, const std::filesystem::path& dir) {
  // Data parallelism: rank 0 writes, the others wait (and fail with it).
  train::on_main_rank(train::world(), "exporting the model", [&] { export_on_this_rank(policy, lora_config, dir); });
}

}  // namespace tune::algo

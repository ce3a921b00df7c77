// Folding adapters into base weights: W' = W + scale * B A.
#include <map>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/core/str.h"
#include "tune/lora/merge.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"

namespace tune::lora {
namespace {

torch::ScalarType dtype_named(const std::string& name, const std::string& origin) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  fail(origin, ": torch_dtype ", name, " cannot be merged into (float32, bfloat16 or float16)");
}

// Adds each adapter's delta to the weight of the same-named projection of `target`. The sum is
// formed in float32 and rounded once to the weight's dtype.
void add_deltas(model::CausalLM& target, const LoraSet& set) {
  std::map<std::string, model::Projection> by_name;
  for (auto& p : target.projections()) by_name.emplace(p.name, p);
  torch::NoGradGuard no_grad;
  for (const auto& m : set.modules()) {
    auto it = by_name.find(m.name);
    TUNE_CHECK(it != by_name.end(), "merge: the model has no projection ", m.name);
    if (m.name == "lm_head" && target.config().tie_word_embeddings)
      fail("merge: lm_head shares its weight with the embedding (tie_word_embeddings), so merging its adapter "
           "would change the embedding too; this is not supported");
    torch::Tensor& w = it->second.linear->weight();  // [out, in]
    auto delta = m.adapter->delta_weight().to(w.device());
    w.copy_((w.to(torch::kFloat32) + delta).to(w.scalar_type()));
  }
}

}  // namespace

MergedAdapters::MergedAdapters(model::CausalLM& model, const LoraSet& set) {
  torch::NoGradGuard no_grad;
  for (const auto& m : set.modules()) {
    if (m.name == "lm_head" && model.config().tie_word_embeddings) continue;
    torch::Tensor& w = m.linear->weight();  // [out, in]
    Saved saved{m.linear, m.linear->adapter(), w.clone()};
    auto delta = m.adapter->delta_weight().to(w.device());
    w.copy_((w.to(torch::kFloat32) + delta).to(w.scalar_type()));
    m.linear->set_adapter(nullptr);
    saved_.push_back(std::move(saved));
  }
}

MergedAdapters::~MergedAdapters() { restore(); }

void MergedAdapters::restore() {
  torch::NoGradGuard no_grad;
  for (auto& s : saved_) {
    s.linear->weight().copy_(s.weight);
    s.linear->set_adapter(s.adapter);
  }
  saved_.clear();
}

std::shared_ptr<model::CausalLM> merged_copy(model::CausalLM& model, const LoraSet& set, torch::Device device) {
  auto dtype = model.options().dtype();
  auto copy = std::make_shared<model::CausalLM>(model.config(), torch::TensorOptions().dtype(dtype).device(device));
  {
    torch::NoGradGuard no_grad;
    auto src = model.named_parameters(/*recurse=*/true);
    auto dst = copy->named_parameters(/*recurse=*/true);
    TUNE_CHECK(src.size() == dst.size(), "merge: parameter lists differ (", src.size(), " vs ", dst.size(), ")");
    for (auto& item : src) {
      auto* target = dst.find(item.key());
      TUNE_CHECK(target, "merge: copy has no parameter ", item.key());
      target->copy_(item.value());
    }
  }
  add_deltas(*copy, set);
  copy->eval();
  return copy;
}

void save_merged(model::CausalLM& model, const LoraSet& set, const std::filesystem::path& out_dir,
                 const std::optional<std::filesystem::path>& base_dir) {
  // Built on the CPU: a merged copy on the accelerator would double the weights' memory there.
  auto copy = merged_copy(model, set, torch::kCPU);
  model::SaveOptions options;
  options.copy_files_from = base_dir;
  model::save_pretrained(*copy, out_dir, options);
}

void merge_adapter_to_dir(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                          const std::filesystem::path& out_dir) {
  namespace stdfs = std::filesystem;
  auto same = [](const stdfs::path& a, const stdfs::path& b) {
    std::error_code ec;
    return stdfs::exists(a) && stdfs::exists(b) && stdfs::equivalent(a, b, ec);
  };
  if (same(out_dir, base_dir) || same(out_dir, adapter_dir))
    usage_fail("merge: the output directory ", out_dir.string(), " must differ from the base model and adapter directories");

  auto config = model::ModelConfig::load(base_dir);
  auto base_dtype = dtype_named(config.torch_dtype, (base_dir / "config.json").string());
  // Loaded in float32 (exact for bf16/f16 files) so the merged sum is rounded once, on save.
  auto model = model::load_pretrained(base_dir, torch::kFloat32);
  auto set = load_adapter(*model, adapter_dir);
  // This model exists only to be merged, so its weights are updated in place.
  add_deltas(*model, set);
  set.remove_from_model();
  model::SaveOptions options;
  options.dtype = base_dtype;
  options.copy_files_from = base_dir;
  model::save_pretrained(*model, out_dir, options);
  log::info("merged ", set.modules().size(), " LoRA projections of ", adapter_dir.string(), " into ",
            base_dir.string(), " -> ", out_dir.string());
}

}  // namespace tune::lora

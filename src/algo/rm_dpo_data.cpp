#include "tune/algo/rm_dpo_data.h"

#include "tune/algo/logprobs.h"
#include "tune/core/error.h"
#include "tune/core/log.h"

namespace tune::algo {

text::ChatTemplate chat_template_for(const ModelSection& m) {
  if (!m.chat_template.empty()) return text::builtin_chat_template(m.chat_template);
  if (auto t = text::load_chat_template(m.path)) return *t;
  usage_fail(m.path, " has no chat template; set model.chat_template to a built-in (",
             join(text::builtin_chat_template_names(), ", "), ")");
}

int32_t pad_id_of(const text::Tokenizer& tok) {
  if (tok.special().pad) return *tok.special().pad;
  if (tok.special().eos) return *tok.special().eos;
  return 0;
}

PreferenceData load_preference_data(const ModelSection& model, const text::DataConfig& data) {
  if (model.path.empty()) usage_fail("config error: model.path is required");
  if (data.datasets.empty()) usage_fail("config error: data.datasets is empty: name at least one JSONL file");
  PreferenceData out;
  out.tokenizer = text::Tokenizer::load(model.path);
  out.masker = std::make_unique<text::ChatMasker>(
      *out.tokenizer, text::make_renderer(chat_template_for(model), *out.tokenizer), text::parse_mask_mode(data.mask));
  text::DataSplit split = text::load_data(data);
  for (const auto* part : {&split.train, &split.eval})
    for (const auto& s : *part)
      if (s.kind != text::SampleKind::preference)
        usage_fail(s.where, ": expected a preference record {prompt, chosen, rejected}, got a ", text::to_string(s.kind),
                   " sample (set data.datasets[].format: preference)");
  out.train = text::tokenize_data(split.train, *out.masker, data);
  out.eval = text::tokenize_data(split.eval, *out.masker, data);
  if (out.train.pairs.empty()) fail("data: no trainable preference pairs after tokenization (", out.train.report().dump(), ")");
  out.pad_id = pad_id_of(*out.tokenizer);
  log::info("data: ", out.train.pairs.size(), " train / ", out.eval.pairs.size(), " eval preference pairs",
            out.train.truncated ? str(", ", out.train.truncated, " truncated") : std::string());
  return out;
}

std::vector<train::ManifestFile> preference_manifest(const ModelSection& model, const text::DataConfig& data) {
  std::vector<train::ManifestFile> files;
  for (const auto& d : data.datasets) files.push_back({"data", d.path});
  if (!data.eval_path.empty()) files.push_back({"data", data.eval_path});
  std::filesystem::path m = model.path;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"})
    if (std::filesystem::exists(m / name)) files.push_back({"tokenizer", m / name});
  files.push_back({"model_config", m / "config.json"});
  return files;
}

SequenceLogps completion_lengths(const data::PreferenceBatch& batch) {
  const int64_t B = batch.num_pairs;
  torch::Tensor n = (batch.batch.labels != text::kIgnoreIndex).sum(1).to(torch::kFloat32);  // [2B]
  SequenceLogps out;
  out.chosen_tokens = n.narrow(0, 0, B);
  out.rejected_tokens = n.narrow(0, B, B);
  return out;
}

SequenceLogps sequence_logps(model::CausalLM& model, const data::PreferenceBatch& batch) {
  const int64_t B = batch.num_pairs;
  torch::Tensor sums = label_logprobs(model, batch.batch).sum(1);  // [2B, T] -> [2B]
  SequenceLogps out = completion_lengths(batch);
  out.chosen = sums.narrow(0, 0, B);
  out.rejected = sums.narrow(0, B, B);
  return out;
}

data::PreferenceBatch to_device(const data::PreferenceBatch& batch, const torch::Device& device) {
  data::PreferenceBatch out = batch;
  out.batch = to_device(batch.batch, device);
  out.margin = batch.margin.to(device);
  out.has_margin = batch.has_margin.to(device);
  return out;
}

data::PreferenceBatch pair_batch(const std::vector<text::TokenizedPair>& pairs, size_t begin, size_t end,
                                 int32_t pad_id) {
  std::vector<const text::TokenizedPair*> ptrs;
  for (size_t i = begin; i < end; ++i) ptrs.push_back(&pairs[i]);
  data::CollateOptions opts;
  opts.pad_id = pad_id;
  return data::collate_pairs(ptrs, opts);
}

}  // namespace tune::algo

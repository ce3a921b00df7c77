#include "tune/algo/training_text.h"

#include "tune/train/communicator.h"

#include <map>

#include "tune/algo/model_source.h"
#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/model/config.h"
#include "tune/text/synthetic.h"

namespace tune::algo {

text::ChatTemplate chat_template_for(const ModelSection& m) {
  if (!m.chat_template.empty()) return text::builtin_chat_template(m.chat_template);
  if (auto t = text::load_chat_template(model_dir(m))) return *t;
  usage_fail(m.path, " has no chat template; set model.chat_template to a built-in (",
             join(text::builtin_chat_template_names(), ", "), ")");
}

int32_t pad_id_of(const text::Tokenizer& tok) {
  if (tok.special().pad) return *tok.special().pad;
  if (tok.special().eos) return *tok.special().eos;
  return 0;
}

namespace {

std::string expected_record(text::SampleKind kind) {
  switch (kind) {
    case text::SampleKind::preference: return "a preference record {prompt, chosen, rejected}";
    case text::SampleKind::prompt: return "a prompt record {prompt, answer?}";
    default: return str("a ", text::to_string(kind), " record");
  }
}

}  // namespace

TrainingText load_training_text(const ModelSection& model, const text::DataConfig& data,
                                std::optional<text::SampleKind> required) {
  if (data.datasets.empty()) usage_fail("config error: data.datasets is empty: name at least one JSONL file");
  TrainingText out;
  out.tokenizer = text::Tokenizer::load(model_dir(model));
  out.masker = std::make_unique<text::ChatMasker>(
      *out.tokenizer, text::make_renderer(chat_template_for(model), *out.tokenizer), text::parse_mask_mode(data.mask));
  out.records = text::load_data(data);
  if (required)
    for (const auto* part : {&out.records.train, &out.records.eval})
      for (const auto& s : *part)
        if (s.kind != *required)
          usage_fail(s.where, ": expected ", expected_record(*required), ", got a ", text::to_string(s.kind),
                     " sample (set data.datasets[].format: ", text::to_string(*required), ")");
  out.train = text::tokenize_data(out.records.train, *out.masker, data);
  out.eval = text::tokenize_data(out.records.eval, *out.masker, data);
  out.pad_id = pad_id_of(*out.tokenizer);
  return out;
}

void require_label_tokens(const TrainingText& text, const text::DataConfig& data) {
  int64_t labels = 0;
  for (const auto& s : text.train.samples) labels += s.num_labels();
  if (labels > 0) return;
  std::map<std::string, int64_t> kinds;
  for (const auto& s : text.records.train) ++kinds[text::to_string(s.kind)];
  std::string read_as;
  for (const auto& [kind, n] : kinds) read_as += str(read_as.empty() ? "" : ", ", n, " ", kind);
  const std::string where = text.records.train.empty() ? std::string("data.datasets") : text.records.train.front().where;
  if (kinds.count("prompt"))
    usage_fail(where, ": the training data has no tokens to learn: its records were read as RL prompts (format "
               "'prompt': {prompt, answer?}, ", read_as, " samples), which hold no answer to train on. Supervised "
               "training needs {messages: [..., {role: assistant, content}]}, {prompt, completion}, {instruction, "
               "output} or {text} records; prompt records are for tune grpo / tune ppo");
  usage_fail(where, ": the training data has no tokens to learn (", read_as, " samples, all label tokens masked by "
             "data.mask: ", data.mask, "; ", text.train.dropped_no_labels, " samples dropped for having none)");
}

data::IteratorOptions iterator_options(const LoopSection& loop, const text::DataConfig& data, int64_t seed,
                                       int32_t pad_id) {
  data::IteratorOptions o;
  o.batch_size = loop.batch_size;
  o.packing = data.packing;
  o.max_seq_len = data.max_seq_len;
  o.shuffle = data.shuffle;
  o.seed = static_cast<uint64_t>(seed);
  o.collate.pad_id = pad_id;
  // Data parallelism: batch_size is per rank (as in torchrun + DDP); this rank's share of each step.
  o.rank = train::world().rank();
  o.world_size = train::world().world_size();
  return o;
}

void report_dry_run(const ModelSection& model, const std::string& method) {
  auto mc = model::ModelConfig::load(model_dir(model));
  log::info("dry run: model ", model::arch_name(mc.arch), " ", human_count(static_cast<double>(mc.num_parameters())),
            " parameters; method ", method, "; nothing trained");
}

namespace {

// A data file, or a synthetic source with the bytes it generates (what the file would hold).
train::ManifestFile data_entry(const std::string& path) {
  if (text::is_synthetic_source(path)) return train::ManifestFile::generated("data", path, text::synthetic_source_jsonl(path));
  return {"data", path};
}

}  // namespace

std::vector<train::ManifestFile> manifest_files(const ModelSection& model, const text::DataConfig& data) {
  std::vector<train::ManifestFile> files;
  for (const auto& d : data.datasets) files.push_back(data_entry(d.path));
  if (!data.eval_path.empty()) files.push_back(data_entry(data.eval_path));
  const std::filesystem::path m = model_dir(model);
  // A built-in model is named by its source; its cached weights are hashed too (they are what it means).
  const std::string source = is_builtin_model(model.path) ? model.path : "";
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"})
    if (std::filesystem::exists(m / name)) files.emplace_back("tokenizer", m / name, source);
  files.emplace_back("model_config", m / "config.json", source);
  if (!source.empty()) files.emplace_back("model_weights", m / "model.safetensors", source);
  return files;
}

}  // namespace tune::algo

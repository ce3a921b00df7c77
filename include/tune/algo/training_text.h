#pragma once
// What every trainer reads before it builds a model: the tokenizer, the chat template and the
// datasets, split and tokenized with loss masks, plus the manifest of the files they came from.
// SFT, RM and DPO share it; PPO and GRPO will read their prompts through it too.
#include <memory>
#include <optional>
#include <vector>

#include "tune/algo/sections.h"
#include "tune/data/batch_iterator.h"
#include "tune/text/chat_mask.h"
#include "tune/text/dataset.h"
#include "tune/text/tokenizer.h"
#include "tune/train/run_dir.h"

namespace tune::algo {

struct TrainingText {
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<text::ChatMasker> masker;
  text::DataSplit records;         // the parsed records (references for exact-match evaluation)
  text::TokenizedDataset train;
  text::TokenizedDataset eval;
  int32_t pad_id = 0;              // the tokenizer's pad token, else eos, else 0
};

// The model's chat template, or the built-in named by model.chat_template.
text::ChatTemplate chat_template_for(const ModelSection& model);
int32_t pad_id_of(const text::Tokenizer& tokenizer);

// Loads, splits and tokenizes data.datasets with the model's tokenizer and template. With
// `required`, every record must be of that kind (the error names the file and line).
TrainingText load_training_text(const ModelSection& model, const text::DataConfig& data,
                                std::optional<text::SampleKind> required = std::nullopt);

// Fails (usage error naming the first record's file:line and what the records were read as) when
// the training split has no label token at all: a step would never have anything to learn.
void require_label_tokens(const TrainingText& text, const text::DataConfig& data);

// Batch iterator options from the loop and data sections (batch size, packing, shuffling, seed, pad).
data::IteratorOptions iterator_options(const LoopSection& loop, const text::DataConfig& data, int64_t seed,
                                       int32_t pad_id);

// `--dry-run`'s last words: the model's architecture and size, the method; nothing is trained.
void report_dry_run(const ModelSection& model, const std::string& method);

// Data files, tokenizer files and the base model's config.json, for the run manifest.
std::vector<train::ManifestFile> manifest_files(const ModelSection& model, const text::DataConfig& data);

}  // namespace tune::algo

// tune data: the dataset tools.
//   synth   write a synthetic task as JSONL (addition, reverse, addition_pref, reverse_pref), as
//           training records or (--format prompt) as RL prompt records with a reference
//   check   quality report of a dataset (lengths, distinct words, near-duplicates, token lengths)
//   filter  write the records that pass the quality filters
//   show    render samples with their loss mask (trained text between [[ and ]])
#include <iostream>

#include "tune/cli/command.h"
#include "tune/cli/model_files.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/log.h"
#include "tune/text/chat_mask.h"
#include "tune/text/data_quality.h"
#include "tune/text/dataset.h"
#include "tune/text/synthetic.h"

namespace tune::cli {
namespace {

struct DataArgs {
  // synth
  text::SynthOptions synth;
  std::string exclude;  // JSONL or synth: source whose prompts are excluded (a training set, when making a test set)
  // check / filter / show
  std::string input, out, report, format = "auto", model, template_name, mask = "assistant";
  text::QualityConfig quality;
  int64_t count = 3;
};

int run_synth(DataArgs& a) {
  if (!a.exclude.empty()) a.synth.exclude_prompts = text::prompts_of_source(a.exclude);
  auto records = text::make_synthetic(a.synth);
  std::string out = text::synthetic_jsonl(records);
  if (a.out.empty()) {
    std::cout << out;
  } else {
    fs::write_file_atomic(a.out, out);
    log::info("wrote ", records.size(), " '", a.synth.task, "' records to ", a.out);
  }
  return 0;
}

text::DatasetConfig dataset_of(const DataArgs& a) {
  text::DatasetConfig d;
  d.path = a.input;
  d.format = a.format;
  return d;
}

struct MaskerHolder {
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<text::ChatMasker> masker;
};

MaskerHolder masker_for(const DataArgs& a) {
  MaskerHolder h;
  if (a.model.empty()) return h;
  const auto model_dir = model_dir_option(a.model, {.config = false});
  h.tokenizer = load_tokenizer(model_dir);
  h.masker = std::make_unique<text::ChatMasker>(
      *h.tokenizer, text::make_renderer(load_template(model_dir, a.template_name), *h.tokenizer),
      text::parse_mask_mode(a.mask));
  return h;
}

int run_check(const DataArgs& a) {
  auto h = masker_for(a);
  Json report = text::check_dataset(dataset_of(a), a.quality, h.masker.get());
  std::cout << report.dump(2) << "\n";
  return 0;
}

int run_filter(const DataArgs& a) {
  auto h = masker_for(a);
  auto r = text::filter_dataset(dataset_of(a), a.out, a.quality, h.masker.get(), a.report);
  log::info("kept ", r.kept, ", dropped ", r.dropped, " -> ", a.out);
  for (const auto& [why, n] : r.dropped_by) log::info("  dropped for ", why, ": ", n);
  return 0;
}

int run_show(const DataArgs& a) {
  auto h = masker_for(a);
  if (!h.masker) usage_fail("tune data show needs --model (for the tokenizer and chat template)");
  text::DatasetConfig d = dataset_of(a);
  d.max_samples = a.count;
  auto loaded = text::load_dataset(d);
  for (const auto& s : loaded.samples) {
    std::cout << "--- " << s.where << " (" << text::to_string(s.kind) << ")\n";
    if (s.kind == text::SampleKind::preference) {
      auto p = h.masker->pair(s);
      std::cout << "chosen:\n" << text::show_masked(*h.tokenizer, p.chosen) << "\nrejected:\n"
                << text::show_masked(*h.tokenizer, p.rejected) << "\n";
    } else {
      auto t = h.masker->sample(s);
      std::cout << text::show_masked(*h.tokenizer, t) << "\n[" << t.input_ids.size() << " tokens, " << t.num_labels()
                << " trained]\n";
    }
  }
  return 0;
}

// An existing file, or a synthetic source (generated when read).
CLI::Validator file_or_synthetic_source() {
  return CLI::Validator(
      [](std::string& v) { return text::is_synthetic_source(v) ? std::string() : CLI::ExistingFile(v); },
      "FILE|synth:...");
}

void add_quality_options(CLI::App* sub, DataArgs& a) {
  sub->add_option("--min-chars", a.quality.min_chars, "drop shorter records")->capture_default_str();
  sub->add_option("--max-chars", a.quality.max_chars, "drop longer records")->capture_default_str();
  sub->add_option("--min-distinct-words", a.quality.min_distinct_words, "distinct/total word ratio")->capture_default_str();
  sub->add_option("--near-dup", a.quality.near_dup_threshold, "near-duplicate similarity (>1: off)")->capture_default_str();
  sub->add_option("--blocklist", a.quality.blocklist, "drop records containing these words");
  sub->add_option("--max-seq-len", a.quality.max_seq_len, "token limit for the truncated share")->capture_default_str();
}

void add_input_options(CLI::App* sub, DataArgs& a) {
  sub->add_option("--input,-i", a.input, "JSONL, JSON array, or a synthetic source (synth:addition?count=100)")
      ->required()
      ->check(file_or_synthetic_source());
  sub->add_option("--format", a.format, "auto | alpaca | sharegpt | messages | prompt_completion | text | preference | prompt")
      ->capture_default_str();
  sub->add_option("--model,-m", a.model, "model directory (tokenizer + chat template) for token statistics");
  sub->add_option("--template", a.template_name, "built-in chat template instead of the model's own");
}

}  // namespace

Command add_data(CLI::App& app) {
  auto a = std::make_shared<DataArgs>();
  auto* data = app.add_subcommand("data", "dataset tools: synth, check, filter, show");
  data->require_subcommand(1);

  auto* synth = data->add_subcommand("synth", "write a synthetic task as JSONL");
  synth->add_option("--task", a->synth.task, "addition | reverse | addition_pref | reverse_pref")
      ->check(CLI::IsMember(text::synthetic_task_names()))
      ->capture_default_str();
  synth->add_option("--count,-n", a->synth.count, "records")->capture_default_str();
  synth->add_option("--seed", a->synth.seed, "seed")->capture_default_str();
  synth->add_option("--digits", a->synth.digits, "operand digits / reversed string length")->capture_default_str();
  synth->add_option("--format", a->synth.format, "default (chat / preference records) | prompt (RL prompts + reference)")
      ->check(CLI::IsMember(text::synthetic_format_names()))
      ->capture_default_str();
  synth->add_option("--exclude", a->exclude,
                    "JSONL (or synth: source) whose prompts must not appear (make a disjoint test set)");
  synth->add_option("--out,-o", a->out, "output JSONL (default: stdout)");

  auto* check = data->add_subcommand("check", "quality report of a dataset (JSON on stdout)");
  add_input_options(check, *a);
  add_quality_options(check, *a);

  auto* filter = data->add_subcommand("filter", "write the records that pass the quality filters");
  add_input_options(filter, *a);
  add_quality_options(filter, *a);
  filter->add_option("--out,-o", a->out, "filtered JSONL")->required();
  filter->add_option("--report", a->report, "also write the report JSON here");

  auto* show = data->add_subcommand("show", "render samples with their loss mask ([[trained]])");
  add_input_options(show, *a);
  show->add_option("--mask", a->mask, "assistant | all | last_turn")->capture_default_str();
  show->add_option("--count,-n", a->count, "samples to show")->capture_default_str();

  return {data, [a, synth, check, filter, show] {
            if (synth->parsed()) return run_synth(*a);
            if (check->parsed()) return run_check(*a);
            if (filter->parsed()) return run_filter(*a);
            if (show->parsed()) return run_show(*a);
            return 2;
          }};
}

}  // namespace tune::cli

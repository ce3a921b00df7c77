#pragma once
// Typed configuration of the training data (the `data:` section). Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "tune/core/config.h"

namespace tune::text {

// One source file.
struct DatasetConfig {
  std::string path;
  std::string format = "auto";  // auto | alpaca | sharegpt | messages | prompt_completion | text | preference | prompt
  double weight = 1.0;          // see DataConfig::mix_size
  Json field_map = Json::object();  // canonical field -> field in this file, e.g. {instruction: question}
  std::string split = "train";  // train: eval share taken by eval_fraction | eval: the whole file is held out
  bool skip_invalid = false;    // count and skip broken records instead of stopping
  int64_t max_samples = 0;      // keep the first N records of the file (0: all)

  template <class V>
  void visit(V& v) {
    v("path", path, "JSONL file or JSON array of records");
    v("format", format, "record format (auto detects by fields)",
      config::one_of({"auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "prompt"}));
    v("weight", weight, "mixing weight", config::at_least(0.0));
    v("field_map", field_map, "rename fields: {canonical: name in file}");
    v("split", split, "train | eval", config::one_of({"train", "eval"}));
    v("skip_invalid", skip_invalid, "skip (and count) broken records instead of failing");
    v("max_samples", max_samples, "use only the first N records (0: all)", config::at_least<int64_t>(0));
  }
};

// "random", "length" or "field:<name>".
config::Check<std::string> order_check();

struct DataConfig {
  std::vector<DatasetConfig> datasets;
  double eval_fraction = 0.0;   // held out from each train dataset, deterministic given the seed
  std::string eval_path;        // a separate eval file (same format rules as datasets[])
  int64_t seed = 42;
  bool shuffle = true;          // order=random only: reshuffle every epoch (false: mixed file order)
  std::string order = "random"; // random | length (short to long) | field:<name> (ascending)
  int64_t max_seq_len = 2048;
  std::string truncation = "right";  // right: keep the start | left: keep the end | drop: drop the sample
  bool packing = false;
  std::string mask = "assistant";    // assistant | all | last_turn
  int64_t mix_size = 0;         // 0: each dataset contributes weight x its size; >0: total, split by weight

  template <class V>
  void visit(V& v) {
    v.list("datasets", datasets);
    v("eval_fraction", eval_fraction, "share of each train dataset held out for evaluation", config::in_range(0.0, 0.9));
    v("eval_path", eval_path, "separate evaluation file (overrides eval_fraction)");
    v("seed", seed, "data shuffling / splitting / mixing seed");
    v("shuffle", shuffle, "reshuffle every epoch (order=random)");
    v("order", order, "random | length | field:<name> (curriculum, ascending)", order_check());
    v("max_seq_len", max_seq_len, "tokens per sample (and per packed row)", config::greater_than<int64_t>(0));
    v("truncation", truncation, "right | left | drop", config::one_of({"right", "left", "drop"}));
    v("packing", packing, "pack several samples per row (position ids restart per sample)");
    v("mask", mask, "which tokens are trained: assistant | all | last_turn", config::one_of({"assistant", "all", "last_turn"}));
    v("mix_size", mix_size, "total mixed samples (0: weights multiply each dataset's size)", config::at_least<int64_t>(0));
  }
};

}  // namespace tune::text

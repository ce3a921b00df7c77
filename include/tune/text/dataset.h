#pragma once
// From configured files to tokenized training samples:
//   load_data      read every dataset, hold out the eval share, mix the train sets by weight
//   tokenize_data  render + mask (ChatMasker), truncate, drop what cannot be trained, order
// Everything is deterministic given DataConfig::seed. Torch-free.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tune/core/json.h"
#include "tune/text/chat_mask.h"
#include "tune/text/dataset_config.h"
#include "tune/text/dataset_format.h"

namespace tune::text {

// A deterministic generator for everything the data pipeline draws (same results on every platform,
// unlike std::shuffle / std::uniform_int_distribution whose algorithms are implementation-defined).
class DataRng {
 public:
  explicit DataRng(uint64_t seed) : state_(seed) {}
  uint64_t next();                  // splitmix64
  uint64_t below(uint64_t bound);   // uniform in [0, bound), bound > 0
 private:
  uint64_t state_;
};
// A seeded permutation of 0..n-1 (Fisher-Yates with DataRng).
std::vector<size_t> seeded_permutation(size_t n, uint64_t seed);
// Mixes two values into a new seed (for per-dataset / per-epoch streams).
uint64_t derive_seed(uint64_t seed, uint64_t stream);

struct LoadedDataset {
  std::string path;
  std::vector<Sample> samples;
  int64_t records = 0;   // good records read
  int64_t skipped = 0;   // broken records skipped (skip_invalid)
  std::vector<std::string> skip_reasons;
};
LoadedDataset load_dataset(const DatasetConfig& config);

// How many samples each dataset contributes to the mix.
//   mix_size == 0: round(weight_i * size_i) (weight 2 = every sample twice, 0.5 = a random half)
//   mix_size  > 0: mix_size split by weight_i / sum(weights) (largest remainder; exact total)
std::vector<int64_t> mix_counts(const std::vector<int64_t>& sizes, const std::vector<double>& weights, int64_t mix_size);
// Takes counts[i] samples from parts[i]: whole passes over the dataset, then a seeded random subset
// for the remainder (no sample repeats more than once more than another), and interleaves the
// datasets proportionally (sample k of dataset i sits at fraction (k + 0.5) / counts[i]).
std::vector<Sample> mix_samples(std::vector<std::vector<Sample>> parts, const std::vector<int64_t>& counts,
                                uint64_t seed);

struct DataSplit {
  std::vector<Sample> train;
  std::vector<Sample> eval;
  Json report = Json::object();  // per dataset: path, records, skipped, train, eval, mixed
};
DataSplit load_data(const DataConfig& config);

struct TokenizedDataset {
  std::vector<TokenizedSample> samples;   // chat / text / prompt samples
  std::vector<TokenizedPair> pairs;       // preference samples
  std::vector<std::optional<std::string>> references;  // per samples[i] (prompt kind)
  std::vector<std::string> where;         // per samples[i] or pairs[i]: "file:line"
  bool fixed_order = false;               // curriculum order: batch iterators must not shuffle
  int64_t truncated = 0;                  // sequences cut to max_seq_len
  int64_t dropped_too_long = 0;           // truncation=drop, or prompts that do not fit
  int64_t dropped_no_labels = 0;          // nothing left to train after masking / truncation
  bool used_fallback = false;             // the chat template was not append-only (see chat_mask.h)
  Json report() const;
};

// Truncates one sequence in place per policy ("right" | "left"); returns true when it was cut.
bool truncate_sequence(TokenizedSample& sample, int64_t max_len, const std::string& policy);

// Tokenizes, truncates and orders. Ordering: "random" keeps the given order (the iterator shuffles),
// "length" sorts by token count ascending, "field:<name>" by the numeric metadata field ascending
// (both stable; fixed_order = true).
TokenizedDataset tokenize_data(const std::vector<Sample>& samples, const ChatMasker& masker, const DataConfig& config);

}  // namespace tune::text

#include "tune/text/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tune/core/error.h"
#include "tune/core/log.h"
#include "tune/text/records.h"

namespace tune::text {

config::Check<std::string> order_check() {
  return [](const std::string& v) {
    if (v == "random" || v == "length") return std::string();
    if (v.rfind("field:", 0) == 0 && v.size() > 6) return std::string();
    return str("must be random, length or field:<name> (got '", v, "')");
  };
}

uint64_t DataRng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t DataRng::below(uint64_t bound) {
  // Rejection sampling: no modulo bias.
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % bound;
}

std::vector<size_t> seeded_permutation(size_t n, uint64_t seed) {
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), size_t{0});
  DataRng rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  return perm;
}

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  DataRng rng(seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return rng.next();
}

LoadedDataset load_dataset(const DatasetConfig& config) {
  LoadedDataset out;
  out.path = config.path;
  ReadOptions options;
  options.skip_invalid = config.skip_invalid;
  options.max_records = config.max_samples;
  RecordSet records = read_records(config.path, options);
  out.records = static_cast<int64_t>(records.records.size());
  out.samples = convert_records(records, config.format, config.field_map, config.skip_invalid);
  out.skipped = records.skipped;
  out.skip_reasons = records.skip_reasons;
  if (out.skipped > 0) log::warn(config.path, ": skipped ", out.skipped, " invalid records (first: ", out.skip_reasons.front(), ")");
  TUNE_CHECK(!out.samples.empty(), config.path, ": no usable samples");
  return out;
}

std::vector<int64_t> mix_counts(const std::vector<int64_t>& sizes, const std::vector<double>& weights, int64_t mix_size) {
  TUNE_CHECK(sizes.size() == weights.size(), "mix_counts: one weight per dataset");
  std::vector<int64_t> counts(sizes.size(), 0);
  if (mix_size == 0) {
    for (size_t i = 0; i < sizes.size(); ++i) counts[i] = std::llround(weights[i] * static_cast<double>(sizes[i]));
    return counts;
  }
  double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  TUNE_CHECK(total > 0, "data: the dataset weights sum to 0");
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    double exact = static_cast<double>(mix_size) * weights[i] / total;
    counts[i] = static_cast<int64_t>(std::floor(exact));
    assigned += counts[i];
    remainders.push_back({exact - std::floor(exact), i});
  }
  // Largest remainder first; ties go to the earlier dataset.
  std::stable_sort(remainders.begin(), remainders.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < mix_size; ++k, ++assigned) counts[remainders[k % remainders.size()].second] += 1;
  return counts;
}

std::vector<Sample> mix_samples(std::vector<std::vector<Sample>> parts, const std::vector<int64_t>& counts,
                                uint64_t seed) {
  TUNE_CHECK(parts.size() == counts.size(), "mix_samples: one count per dataset");
  struct Slot {
    double key;
    size_t part, index;
  };
  std::vector<Slot> slots;
  for (size_t p = 0; p < parts.size(); ++p) {
    size_t n = parts[p].size();
    int64_t c = counts[p];
    if (c <= 0) continue;
    TUNE_CHECK(n > 0, "mix_samples: dataset ", p, " is empty but has a share");
    std::vector<size_t> chosen;
    chosen.reserve(static_cast<size_t>(c));
    for (size_t pass = 0; static_cast<int64_t>(chosen.size()) < c; ++pass) {
      size_t need = static_cast<size_t>(c) - chosen.size();
      if (need >= n) {
        for (size_t i = 0; i < n; ++i) chosen.push_back(i);  // a whole pass keeps the file order
      } else {
        std::vector<size_t> perm = seeded_permutation(n, derive_seed(seed, p * 1000003 + pass));
        perm.resize(need);
        std::sort(perm.begin(), perm.end());
        chosen.insert(chosen.end(), perm.begin(), perm.end());
      }
    }
    for (size_t k = 0; k < chosen.size(); ++k)
      slots.push_back({(static_cast<double>(k) + 0.5) / static_cast<double>(c), p, chosen[k]});
  }
  std::stable_sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& b) { return a.key < b.key; });
  std::vector<Sample> out;
  out.reserve(slots.size());
  for (const auto& s : slots) out.push_back(parts[s.part][s.index]);
  return out;
}

namespace {

// Deterministic held-out split: a seeded choice of round(n * fraction) samples (at least one when
// the fraction is positive and the dataset has two or more), both halves in file order.
void split_eval(std::vector<Sample>& samples, double fraction, uint64_t seed, std::vector<Sample>& eval) {
  size_t n = samples.size();
  if (fraction <= 0 || n < 2) return;
  size_t n_eval = static_cast<size_t>(std::llround(static_cast<double>(n) * fraction));
  n_eval = std::clamp<size_t>(n_eval, 1, n - 1);
  std::vector<size_t> perm = seeded_permutation(n, seed);
  std::vector<char> is_eval(n, 0);
  for (size_t k = 0; k < n_eval; ++k) is_eval[perm[k]] = 1;
  std::vector<Sample> train;
  for (size_t i = 0; i < n; ++i) (is_eval[i] ? eval : train).push_back(std::move(samples[i]));
  samples = std::move(train);
}

}  // namespace

DataSplit load_data(const DataConfig& config) {
  if (config.datasets.empty()) usage_fail("config error: data.datasets is empty (add at least one {path: ...})");
  DataSplit out;
  out.report["datasets"] = Json::array();
  std::vector<std::vector<Sample>> parts;
  std::vector<double> weights;
  std::vector<int64_t> sizes;
  std::vector<size_t> report_index;
  uint64_t seed = static_cast<uint64_t>(config.seed);
  for (size_t i = 0; i < config.datasets.size(); ++i) {
    const auto& dc = config.datasets[i];
    LoadedDataset loaded = load_dataset(dc);
    Json entry = {{"path", dc.path}, {"records", loaded.records}, {"skipped", loaded.skipped},
                  {"samples", static_cast<int64_t>(loaded.samples.size())}};
    size_t eval_before = out.eval.size();
    if (dc.split == "eval") {
      for (auto& s : loaded.samples) out.eval.push_back(std::move(s));
      loaded.samples.clear();
    } else if (config.eval_path.empty()) {
      split_eval(loaded.samples, config.eval_fraction, derive_seed(seed, 7919 + i), out.eval);
    }
    entry["eval"] = static_cast<int64_t>(out.eval.size() - eval_before);
    entry["train"] = static_cast<int64_t>(loaded.samples.size());
    out.report["datasets"].push_back(entry);
    if (!loaded.samples.empty()) {
      sizes.push_back(static_cast<int64_t>(loaded.samples.size()));
      weights.push_back(dc.weight);
      parts.push_back(std::move(loaded.samples));
      report_index.push_back(i);
    }
  }
  if (!config.eval_path.empty()) {
    DatasetConfig ec;
    ec.path = config.eval_path;
    LoadedDataset loaded = load_dataset(ec);
    out.report["eval_file"] = {{"path", ec.path}, {"samples", static_cast<int64_t>(loaded.samples.size())}};
    for (auto& s : loaded.samples) out.eval.push_back(std::move(s));
  }
  TUNE_CHECK(!parts.empty(), "data: no training samples (every dataset is split: eval)");
  std::vector<int64_t> counts = mix_counts(sizes, weights, config.mix_size);
  for (size_t k = 0; k < counts.size(); ++k) out.report["datasets"][report_index[k]]["mixed"] = counts[k];
  out.train = mix_samples(std::move(parts), counts, derive_seed(seed, 104729));
  TUNE_CHECK(!out.train.empty(), "data: the mix is empty (all weights 0?)");
  out.report["train"] = static_cast<int64_t>(out.train.size());
  out.report["eval"] = static_cast<int64_t>(out.eval.size());
  return out;
}

bool truncate_sequence(TokenizedSample& s, int64_t max_len, const std::string& policy) {
  auto n = static_cast<int64_t>(s.input_ids.size());
  if (n <= max_len) return false;
  if (policy == "left") {
    s.input_ids.erase(s.input_ids.begin(), s.input_ids.begin() + (n - max_len));
    s.labels.erase(s.labels.begin(), s.labels.begin() + (n - max_len));
  } else {
    s.input_ids.resize(static_cast<size_t>(max_len));
    s.labels.resize(static_cast<size_t>(max_len));
  }
  return true;
}

Json TokenizedDataset::report() const {
  return {{"samples", static_cast<int64_t>(samples.size())},
          {"pairs", static_cast<int64_t>(pairs.size())},
          {"truncated", truncated},
          {"dropped_too_long", dropped_too_long},
          {"dropped_no_labels", dropped_no_labels},
          {"template_append_only", !used_fallback}};
}

namespace {

double order_key(const Sample& s, const std::string& field) {
  auto it = s.metadata.find(field);
  if (it == s.metadata.end() || !it->is_number())
    fail(s.where, ": order: field:", field, " needs a numeric '", field, "' in every record",
         it == s.metadata.end() ? " (missing)" : " (not a number)");
  return it->get<double>();
}

}  // namespace

TokenizedDataset tokenize_data(const std::vector<Sample>& samples, const ChatMasker& masker, const DataConfig& config) {
  TokenizedDataset out;
  const int64_t max_len = config.max_seq_len;
  const bool drop = config.truncation == "drop";
  std::vector<double> keys;  // ordering key per kept item
  std::string field = config.order.rfind("field:", 0) == 0 ? config.order.substr(6) : "";
  for (const auto& s : samples) {
    double key = field.empty() ? 0.0 : order_key(s, field);
    if (s.kind == SampleKind::preference) {
      TokenizedPair p = masker.pair(s);
      bool too_long = static_cast<int64_t>(std::max(p.chosen.input_ids.size(), p.rejected.input_ids.size())) > max_len;
      if (too_long && drop) {
        ++out.dropped_too_long;
        continue;
      }
      bool cut = truncate_sequence(p.chosen, max_len, config.truncation);
      cut = truncate_sequence(p.rejected, max_len, config.truncation) || cut;
      out.truncated += cut;
      if (p.chosen.num_labels() == 0 || p.rejected.num_labels() == 0) {
        ++out.dropped_no_labels;
        continue;
      }
      if (config.order == "length") key = static_cast<double>(std::max(p.chosen.input_ids.size(), p.rejected.input_ids.size()));
      out.pairs.push_back(std::move(p));
      out.where.push_back(s.where);
      keys.push_back(key);
      continue;
    }
    TokenizedSample t = masker.sample(s);
    bool too_long = static_cast<int64_t>(t.input_ids.size()) > max_len;
    // A cut prompt would make the model continue mid-prompt: prompts that do not fit are dropped.
    if (too_long && (drop || s.kind == SampleKind::prompt)) {
      ++out.dropped_too_long;
      continue;
    }
    out.truncated += truncate_sequence(t, max_len, config.truncation);
    if (s.kind != SampleKind::prompt && t.num_labels() == 0) {
      ++out.dropped_no_labels;
      continue;
    }
    if (config.order == "length") key = static_cast<double>(t.input_ids.size());
    out.samples.push_back(std::move(t));
    out.references.push_back(s.reference);
    out.where.push_back(s.where);
    keys.push_back(key);
  }
  out.used_fallback = masker.used_fallback();
  if (out.dropped_no_labels > 0)
    log::warn("data: dropped ", out.dropped_no_labels, " samples with no trained tokens (after masking and truncation)");
  if (out.dropped_too_long > 0) log::warn("data: dropped ", out.dropped_too_long, " samples longer than max_seq_len=", max_len);
  if (!out.samples.empty() && !out.pairs.empty())
    fail("data: preference pairs cannot be mixed with other samples in one training set");
  if (config.order != "random") {
    out.fixed_order = true;
    std::vector<size_t> idx(keys.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
    auto reorder = [&](auto& v) {
      if (v.empty()) return;
      std::remove_reference_t<decltype(v)> sorted;
      sorted.reserve(v.size());
      for (size_t i : idx) sorted.push_back(std::move(v[i]));
      v = std::move(sorted);
    };
    // Samples and pairs are never both filled, so one index order fits whichever is.
    reorder(out.samples);
    reorder(out.pairs);
    reorder(out.references);
    reorder(out.where);
  }
  return out;
}

}  // namespace tune::text

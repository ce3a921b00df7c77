#include "tune/text/data_quality.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/text/records.h"

namespace tune::text {

namespace {

constexpr int kShingleWords = 3;
constexpr int kBands = 32;
constexpr int kRowsPerBand = 4;  // 128 MinHash values

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c >= 0x80; }

std::vector<uint64_t> shingles_of(const std::string& text) {
  std::vector<std::string> w = words_of(text);
  std::vector<uint64_t> out;
  if (w.empty()) return out;
  if (w.size() < kShingleWords) {
    out.push_back(fnv1a(join(w, "\x1f")));
  } else {
    for (size_t i = 0; i + kShingleWords <= w.size(); ++i) {
      uint64_t h = 1469598103934665603ull;
      for (int k = 0; k < kShingleWords; ++k) h = fnv1a(w[i + k] + "\x1f", h);
      out.push_back(h);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

double jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  if (a.empty() && b.empty()) return 1.0;
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) ++common, ++i, ++j;
    else if (a[i] < b[j]) ++i;
    else ++j;
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

// One key per band: the band's MinHash values hashed together.
std::vector<uint64_t> band_keys(const std::vector<uint64_t>& shingles) {
  std::vector<uint64_t> keys(kBands);
  for (int b = 0; b < kBands; ++b) {
    uint64_t key = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(b + 1);
    for (int r = 0; r < kRowsPerBand; ++r) {
      uint64_t seed = mix64(static_cast<uint64_t>(b * kRowsPerBand + r) + 0x1234567ull);
      uint64_t m = UINT64_MAX;
      for (uint64_t s : shingles) m = std::min(m, mix64(s ^ seed));
      key = mix64(key ^ m);
    }
    keys[b] = key;
  }
  return keys;
}

std::string lower_ascii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void add_contents(std::string& out, const std::vector<Message>& messages) {
  for (const auto& m : messages) {
    if (!out.empty()) out += "\n";
    out += m.content;
  }
}

}  // namespace

std::string quality_text(const Sample& s) {
  std::string out = s.text;
  add_contents(out, s.messages);
  add_contents(out, s.chosen);
  add_contents(out, s.rejected);
  return out;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : text) {
    if (is_word_byte(c)) {
      cur += static_cast<char>(std::tolower(c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

WordStats word_stats(const std::string& text) {
  std::vector<std::string> w = words_of(text);
  std::set<std::string> distinct(w.begin(), w.end());
  return {static_cast<int64_t>(w.size()), static_cast<int64_t>(distinct.size())};
}

int64_t count_chars(const std::string& utf8) {
  int64_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

double shingle_jaccard(const std::string& a, const std::string& b) { return jaccard(shingles_of(a), shingles_of(b)); }

NearDuplicates::NearDuplicates(double threshold) : threshold_(threshold), bands_(kBands) {}

int64_t NearDuplicates::find(const std::string& text, double* similarity) const {
  if (threshold_ > 1.0 || kept_.empty()) return -1;
  std::vector<uint64_t> sh = shingles_of(text);
  std::vector<uint64_t> keys = band_keys(sh);
  std::set<int64_t> candidates;
  for (int b = 0; b < kBands; ++b) {
    auto it = bands_[b].find(keys[b]);
    if (it != bands_[b].end()) candidates.insert(it->second.begin(), it->second.end());
  }
  int64_t best = -1;
  double best_sim = 0.0;
  for (int64_t c : candidates) {
    double sim = jaccard(sh, kept_[c].shingles);
    if (sim >= threshold_ && sim > best_sim) best = c, best_sim = sim;
  }
  if (similarity) *similarity = best_sim;
  return best;
}

void NearDuplicates::add(const std::string& text) {
  Entry e{shingles_of(text)};
  std::vector<uint64_t> keys = band_keys(e.shingles);
  auto index = static_cast<int64_t>(kept_.size());
  for (int b = 0; b < kBands; ++b) bands_[b][keys[b]].push_back(index);
  kept_.push_back(std::move(e));
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

QualityRun assess_dataset(const DatasetConfig& dataset, const QualityConfig& q, const ChatMasker* masker) {
  QualityRun run;
  RecordSet set = read_records(dataset.path, {.skip_invalid = true, .max_records = dataset.max_samples});
  run.invalid = set.skipped;
  run.invalid_reasons = set.skip_reasons;
  std::vector<std::string> blocked;
  for (const auto& b : q.blocklist) blocked.push_back(lower_ascii(b));
  NearDuplicates dups(q.near_dup_threshold);
  std::vector<int64_t> kept_index;  // NearDuplicates index -> record index
  std::string format = dataset.format;
  for (auto& rec : set.records) {
    std::vector<Sample> samples;
    try {
      if (format == "auto") format = detect_format(rec.value, dataset.field_map);
      samples = convert_record(rec.value, format, dataset.field_map);
    } catch (const RecordError& e) {
      ++run.invalid;
      if (run.invalid_reasons.size() < 5) run.invalid_reasons.push_back(str(rec.where, ": ", e.what()));
      continue;
    }
    RecordQuality v;
    v.where = rec.where;
    std::string text = samples.empty() ? "" : quality_text(samples.front());
    v.chars = count_chars(text);
    v.distinct_ratio = word_stats(text).distinct_ratio();
    if (masker && !samples.empty()) {
      const Sample& s = samples.front();
      if (s.kind == SampleKind::preference) {
        TokenizedPair p = masker->pair(s);
        v.tokens = static_cast<int64_t>(std::max(p.chosen.input_ids.size(), p.rejected.input_ids.size()));
      } else {
        v.tokens = static_cast<int64_t>(masker->sample(s).input_ids.size());
      }
    }
    if (v.chars < q.min_chars) v.problems.push_back("too_short");
    if (v.chars > q.max_chars) v.problems.push_back("too_long");
    if (v.distinct_ratio < q.min_distinct_words) v.problems.push_back("low_distinct_words");
    if (!blocked.empty()) {
      std::string low = lower_ascii(text);
      for (const auto& b : blocked)
        if (!b.empty() && low.find(b) != std::string::npos) {
          v.problems.push_back("blocked");
          break;
        }
    }
    // Only records that pass the other filters are compared, and become references when kept.
    if (v.problems.empty()) {
      int64_t dup = dups.find(text, &v.similarity);
      if (dup >= 0) {
        v.problems.push_back("near_duplicate");
        v.duplicate_of = kept_index[static_cast<size_t>(dup)];
      } else {
        dups.add(text);
        kept_index.push_back(static_cast<int64_t>(run.records.size()));
      }
    }
    run.records.push_back(std::move(rec));
    run.verdicts.push_back(std::move(v));
  }
  return run;
}

namespace {

Json distribution(const std::vector<double>& values) {
  if (values.empty()) return Json::object();
  double sum = 0;
  for (double v : values) sum += v;
  return {{"min", percentile(values, 0)},   {"p50", percentile(values, 50)}, {"p90", percentile(values, 90)},
          {"p99", percentile(values, 99)},  {"max", percentile(values, 100)},
          {"mean", sum / static_cast<double>(values.size())}};
}

Json report_of(const DatasetConfig& dataset, const QualityConfig& q, const QualityRun& run) {
  Json r = Json::object();
  r["path"] = dataset.path;
  r["records"] = static_cast<int64_t>(run.records.size());
  r["invalid"] = run.invalid;
  r["invalid_examples"] = run.invalid_reasons;
  std::vector<double> chars, tokens, distinct;
  int64_t over = 0, keep = 0;
  Json problems = {{"too_short", 0}, {"too_long", 0}, {"low_distinct_words", 0}, {"blocked", 0}, {"near_duplicate", 0}};
  Json examples = Json::object();
  for (const auto& v : run.verdicts) {
    chars.push_back(static_cast<double>(v.chars));
    distinct.push_back(v.distinct_ratio);
    if (v.tokens >= 0) {
      tokens.push_back(static_cast<double>(v.tokens));
      over += v.tokens > q.max_seq_len;
    }
    keep += v.keep();
    for (const auto& p : v.problems) {
      problems[p] = problems[p].get<int64_t>() + 1;
      if (!examples.contains(p)) examples[p] = Json::array();
      if (examples[p].size() < 5) {
        std::string ex = v.where;
        if (p == "near_duplicate") ex += str(" (~", run.verdicts[static_cast<size_t>(v.duplicate_of)].where, ", ",
                                             fixed(v.similarity, 2), ")");
        examples[p].push_back(ex);
      }
    }
  }
  r["chars"] = distribution(chars);
  r["distinct_word_ratio"] = distribution(distinct);
  if (!tokens.empty()) {
    r["tokens"] = distribution(tokens);
    r["max_seq_len"] = q.max_seq_len;
    r["over_max_seq_len"] = over;
    r["truncated_share"] = static_cast<double>(over) / static_cast<double>(tokens.size());
  }
  r["problems"] = problems;
  r["examples"] = examples;
  r["would_keep"] = keep;
  r["would_drop"] = static_cast<int64_t>(run.verdicts.size()) - keep;
  r["filters"] = config::to_json(q);
  return r;
}

}  // namespace

Json check_dataset(const DatasetConfig& dataset, const QualityConfig& quality, const ChatMasker* masker) {
  return report_of(dataset, quality, assess_dataset(dataset, quality, masker));
}

FilterResult filter_dataset(const DatasetConfig& dataset, const std::filesystem::path& output,
                            const QualityConfig& quality, const ChatMasker* masker,
                            const std::filesystem::path& report_path) {
  QualityRun run = assess_dataset(dataset, quality, masker);
  FilterResult out;
  std::string body;
  for (size_t i = 0; i < run.records.size(); ++i) {
    const auto& v = run.verdicts[i];
    if (v.keep()) {
      body += run.records[i].value.dump() + "\n";
      ++out.kept;
    } else {
      ++out.dropped;
      for (const auto& p : v.problems) out.dropped_by[p]++;
    }
  }
  fs::write_file_atomic(output, body);
  out.report = report_of(dataset, quality, run);
  out.report["output"] = output.string();
  out.report["kept"] = out.kept;
  out.report["dropped"] = out.dropped + run.invalid;
  if (!report_path.empty()) write_json_file(report_path, out.report);
  return out;
}

}  // namespace tune::text

#include "tune/report/html_report.h"

#include <algorithm>
#include <set>

#include "tune/core/fs.h"
#include "tune/core/str.h"
#include "tune/version.h"

namespace tune::report {

namespace stdfs = std::filesystem;

namespace {

// Ten distinguishable colours (the usual categorical palette) and four dash patterns.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const char* const kDashes[] = {"", "6 3", "2 2", "8 3 2 3"};

bool for_trainer(const ChartDef& def, const std::string& trainer) {
  return def.trainers.empty() || std::find(def.trainers.begin(), def.trainers.end(), trainer) != def.trainers.end();
}

const Series* find_series(const RunData& run, const std::string& key) {
  if (auto it = run.train.find(key); it != run.train.end()) return &it->second;
  if (auto it = run.eval.find(key); it != run.eval.end()) return &it->second;
  return nullptr;
}

bool is_eval_key(const RunData& run, const std::string& key) { return !run.train.count(key) && run.eval.count(key); }

// The keys of `def` present in `run`, prefixes expanded (sorted).
std::vector<std::string> keys_of(const ChartDef& def, const RunData& run) {
  std::vector<std::string> out;
  for (const auto& k : def.keys) {
    if (!k.empty() && k.back() == '/') {
      std::set<std::string> found;
      for (const auto* m : {&run.train, &run.eval})
        for (const auto& [name, s] : *m)
          if (name.rfind(k, 0) == 0) found.insert(name);
      out.insert(out.end(), found.begin(), found.end());
    } else if (find_series(run, k)) {
      out.push_back(k);
    }
  }
  return out;
}

std::string esc(std::string_view s) { return xml_escape(s); }

std::string cell_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string scalar_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void flatten(const Json& j, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  if (j.is_array() && std::any_of(j.begin(), j.end(), [](const Json& e) { return e.is_object() || e.is_array(); })) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], str(prefix, "[", i, "]"), out);
    return;
  }
  out.emplace_back(prefix, scalar_text(j));
}

std::string clip_text(const std::string& s, size_t n = 2000) { return s.size() > n ? s.substr(0, n) + " [...]" : s; }

// The samples shown for a run: the latest evaluation's first, then earlier ones, then training samples.
std::vector<const Json*> pick_samples(const RunData& run, int64_t n) {
  std::vector<const Json*> eval, train;
  for (auto it = run.samples.rbegin(); it != run.samples.rend(); ++it)
    (it->value("kind", "") == "eval" ? eval : train).push_back(&*it);
  std::vector<const Json*> out;
  for (auto* v : {&eval, &train})
    for (const Json* s : *v)
      if (static_cast<int64_t>(out.size()) < n) out.push_back(s);
  std::stable_sort(out.begin(), out.end(), [](const Json* a, const Json* b) {
    return a->value("step", int64_t{0}) < b->value("step", int64_t{0});
  });
  return out;
}

const char* const kStyle = R"(
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1360px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.best td { background: #e8f5e9; font-weight: bold; }
tr.diff td { background: #fff8e1; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #e5e5e5; }
pre { white-space: pre-wrap; margin: 0; font-size: 12px; max-width: 560px; }
.warning { color: #b71c1c; } .note { color: #555; } .healthy { color: #1b5e20; }
.meta { color: #666; font-size: 13px; }
)";

}  // namespace

const std::vector<ChartDef>& chart_defs() {
  static const std::vector<ChartDef> defs = {
      {"loss", "Loss", {}, {"loss", "eval_loss"}},
      {"lr", "Learning rate", {}, {"lr", "critic/lr"}},
      {"grad_norm", "Gradient norm (before clipping)", {}, {"grad_norm", "critic/grad_norm"}},
      {"exact_match", "Eval exact match", {"sft"}, {"eval_exact_match", "eval_hit_limit"}},
      {"rm_accuracy", "Pairwise accuracy", {"rm"}, {"accuracy", "eval_accuracy"}},
      {"rm_margin", "Reward margin", {"rm"}, {"margin", "eval_margin"}},
      {"margins", "Reward margins (chosen - rejected)", {"dpo"}, {"rewards/margins", "eval_rewards/margins"}},
      {"accuracies", "Preference accuracy", {"dpo"}, {"rewards/accuracies", "eval_rewards/accuracies"}},
      {"logps", "Log-probs of chosen / rejected", {"dpo"}, {"logps/chosen", "logps/rejected", "eval_logps/chosen", "eval_logps/rejected"}},
      {"rewards", "Implicit rewards of chosen / rejected", {"dpo"}, {"rewards/chosen", "rewards/rejected"}},
      {"reward", "Reward and its terms", {"grpo", "ppo"}, {"reward", "reward_with_kl", "reward/"}},
      {"reward_std", "Reward std", {"grpo", "ppo"}, {"reward_std"}},
      {"pass", "Held-out pass@1", {"grpo", "ppo"}, {"eval_pass@1", "eval_pass@1_greedy", "eval_pass@1_sampled"}},
      {"kl", "KL to the reference (per token)", {"grpo", "ppo"}, {"kl", "approx_kl"}},
      {"kl_coef", "KL coefficient", {"ppo"}, {"kl_coef"}},
      {"entropy", "Policy entropy (nats / token)", {"grpo", "ppo"}, {"entropy"}},
      {"clip", "Clip fractions", {"grpo", "ppo"}, {"clip_ratio/low", "clip_ratio/high", "clip_ratio/dual", "value/clip_frac"}},
      {"length", "Completion length (tokens)", {"grpo", "ppo"}, {"completion_length", "completion_length_max"}},
      {"truncated", "Truncated completions (share)", {"grpo", "ppo"}, {"truncated"}},
      {"zero_variance", "Groups without reward variance (share)", {"grpo"}, {"zero_variance_groups"}},
      {"value_loss", "Value loss", {"ppo"}, {"value/loss"}},
      {"explained_variance", "Critic explained variance", {"ppo"}, {"explained_variance"}},
      {"throughput", "Throughput (tokens / s)", {}, {"tokens_per_s", "rollout_tokens_per_s"}},
  };
  return defs;
}

std::vector<ChartSpec> build_charts(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                                    const ReportOptions& options) {
  std::vector<ChartSpec> charts;
  const bool several = runs.size() > 1;
  for (const auto& def : chart_defs()) {
    ChartSpec spec;
    spec.id = def.id;
    spec.title = def.title;
    spec.smoothing = options.smoothing;
    // Every run's keys on one list, so a metric has the same dash in every run.
    std::vector<std::string> all_keys;
    for (const auto& run : runs)
      if (for_trainer(def, run.trainer))
        for (const auto& k : keys_of(def, run))
          if (std::find(all_keys.begin(), all_keys.end(), k) == all_keys.end()) all_keys.push_back(k);
    for (size_t r = 0; r < runs.size(); ++r) {
      const RunData& run = runs[r];
      if (!for_trainer(def, run.trainer)) continue;
      for (size_t k = 0; k < all_keys.size(); ++k) {
        const Series* s = find_series(run, all_keys[k]);
        if (!s) continue;
        ChartLine line;
        line.run = run.name;
        line.key = all_keys[k];
        line.label = several ? run.name + ": " + all_keys[k] : all_keys[k];
        line.x.assign(s->steps.begin(), s->steps.end());
        line.y = s->values;
        line.smooth = !is_eval_key(run, all_keys[k]);
        line.color = kPalette[(several ? r : spec.lines.size()) % 10];
        line.dash = several ? kDashes[k % 4] : "";
        spec.lines.push_back(std::move(line));
      }
    }
    if (spec.lines.empty()) continue;
    for (size_t r = 0; r < runs.size() && r < diagnoses.size(); ++r)
      for (const auto& f : diagnoses[r].findings)
        if (f.kind == "symptom" && f.step)
          spec.markers.push_back({static_cast<double>(*f.step), several ? runs[r].name + ": " + f.id : f.id,
                                  several ? kPalette[r % 10] : "#d62728"});
    charts.push_back(std::move(spec));
  }
  return charts;
}

std::string render_html(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                        const std::vector<ChartSpec>& charts, const ReportOptions& options) {
  std::vector<std::string> names;
  for (const auto& r : runs) names.push_back(r.name);
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += str("<title>tune report: ", esc(join(names, ", ")), "</title>\n<style>", kStyle, "</style>\n</head>\n<body>\n");
  h += str("<h1>tune report: ", esc(join(names, ", ")), "</h1>\n<p class=\"meta\">written by tune ", TUNE_VERSION,
           "; curves smoothed by an exponential moving average (weight ", fixed(options.smoothing, 2),
           ") over the raw values drawn faint; evaluation results as points.</p>\n");

  // Runs.
  h += "<h2>Runs</h2>\n<table class=\"runs\">\n<tr><th>run</th><th>trainer</th><th>directory</th><th>created</th>"
       "<th>tune</th><th>records</th><th>last step</th><th>best checkpoint</th><th>doctor</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    std::string best = "-";
    for (const auto& c : r.checkpoints)
      if (c.best) best = c.dir + (c.metric ? str(" (", r.checkpoint_metric, " ", cell_number(*c.metric), ")") : "");
    int64_t symptoms = 0, warnings = 0;
    if (i < diagnoses.size())
      for (const auto& f : diagnoses[i].findings) (f.kind == "symptom" ? symptoms : warnings) += f.severity == "warning";
    const std::string verdict = symptoms + warnings == 0
                                    ? "<span class=\"healthy\">healthy</span>"
                                    : str("<span class=\"warning\">", symptoms, " symptom(s), ", warnings, " config warning(s)</span>");
    h += str("<tr><td>", esc(r.name), "</td><td>", esc(r.trainer), "</td><td>", esc(r.dir.string()), "</td><td>",
             esc(r.manifest.value("created", "-")), "</td><td>", esc(r.manifest.value("tune_version", "-")), "</td><td>",
             r.records.size(), "</td><td>", r.last_step(), "</td><td>", esc(best), "</td><td>", verdict, "</td></tr>\n");
  }
  h += "</table>\n";

  // Symptoms and config smells.
  h += "<h2>Symptoms and config smells</h2>\n";
  bool any = false;
  std::string rows;
  for (size_t i = 0; i < runs.size() && i < diagnoses.size(); ++i)
    for (const auto& f : diagnoses[i].findings) {
      any = true;
      rows += str("<tr class=\"finding\" data-run=\"", esc(runs[i].name), "\" data-id=\"", esc(f.id), "\"><td>",
                  esc(runs[i].name), "</td><td>", f.step ? std::to_string(*f.step) : "-", "</td><td class=\"", f.severity,
                  "\">", esc(f.id), "</td><td>", esc(f.evidence), "</td><td>", esc(f.cause), "</td><td>", esc(f.remedy),
                  "</td><td>",
                  f.origin == "watcher"  ? "the watcher, during the run"
                  : f.origin == "doctor" ? "the doctor, from metrics.jsonl"
                                         : "the configuration",
                  "</td></tr>\n");
    }
  if (any)
    h += "<table class=\"symptoms\">\n<tr><th>run</th><th>step</th><th>id</th><th>evidence</th><th>likely cause</th>"
         "<th>remedy</th><th>raised by</th></tr>\n" +
         rows + "</table>\n";
  else
    h += "<p class=\"healthy\">None found: no rule of the symptom table fired and the configuration has no smell.</p>\n";

  // Charts.
  h += "<h2>Charts</h2>\n<div class=\"charts\">\n";
  for (const auto& c : charts) h += str("<figure>", render_svg(c, false), "</figure>\n");
  h += "</div>\n";

  // Checkpoints.
  h += "<h2>Checkpoints</h2>\n";
  for (const auto& r : runs) {
    if (r.checkpoints.empty()) {
      h += str("<p>", esc(r.name), ": no checkpoints.json</p>\n");
      continue;
    }
    h += str("<p>", esc(r.name), ": best by ", esc(r.checkpoint_metric.empty() ? "- (no eval metric: the latest)" : r.checkpoint_metric),
             r.checkpoint_metric.empty() ? "" : (r.greater_is_better ? " (higher is better)" : " (lower is better)"), "</p>\n");
    h += "<table class=\"checkpoints\">\n<tr><th>step</th><th>directory</th><th>metric</th><th></th></tr>\n";
    for (const auto& c : r.checkpoints)
      h += str("<tr", c.best ? " class=\"best\"" : "", "><td>", c.step, "</td><td>", esc(c.dir), "</td><td>",
               c.metric ? cell_number(*c.metric) : "-", "</td><td>", c.best ? "best" : "", "</td></tr>\n");
    h += "</table>\n";
  }

  // Sample completions.
  h += "<h2>Sample completions</h2>\n";
  for (const auto& r : runs) {
    const auto picked = pick_samples(r, options.samples_per_run);
    if (picked.empty()) {
      h += str("<p>", esc(r.name), ": no samples.jsonl</p>\n");
      continue;
    }
    h += str("<p>", esc(r.name), "</p>\n<table class=\"samples\">\n<tr><th>step</th><th>kind</th><th>prompt</th>"
             "<th>completion</th><th>expected / score</th></tr>\n");
    for (const Json* s : picked) {
      std::string expected;
      for (const char* k : {"reference", "chosen", "rejected"})
        if (s->contains(k) && (*s)[k].is_string()) expected += str(k, ": ", scalar_text((*s)[k]), "\n");
      for (const char* k : {"correct", "matches_chosen", "reward", "finish"})
        if (s->contains(k) && !(*s)[k].is_null()) expected += str(k, ": ", scalar_text((*s)[k]), "\n");
      h += str("<tr class=\"sample\"><td>", s->value("step", int64_t{0}), "</td><td>", esc(s->value("kind", "")),
               "</td><td><pre>", esc(clip_text(s->value("prompt", ""))), "</pre></td><td><pre>",
               esc(clip_text(s->value("completion", ""))), "</pre></td><td><pre>", esc(clip_text(expected)),
               "</pre></td></tr>\n");
    }
    h += "</table>\n";
  }

  // Configuration, one column per run; rows that differ between runs are highlighted.
  h += "<h2>Configuration</h2>\n<table class=\"config\">\n<tr><th>key</th>";
  for (const auto& r : runs) h += str("<th>", esc(r.name), "</th>");
  h += "</tr>\n";
  std::vector<std::string> keys;
  std::vector<std::map<std::string, std::string>> values(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<std::pair<std::string, std::string>> flat;
    flatten(runs[i].config, "", flat);
    for (auto& [k, v] : flat) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      values[i][k] = v;
    }
  }
  for (const auto& k : keys) {
    std::set<std::string> distinct;
    for (const auto& v : values) distinct.insert(v.count(k) ? v.at(k) : "");
    h += str("<tr", runs.size() > 1 && distinct.size() > 1 ? " class=\"diff\"" : "", "><td>", esc(k), "</td>");
    for (const auto& v : values) h += str("<td>", esc(v.count(k) ? v.at(k) : ""), "</td>");
    h += "</tr>\n";
  }
  h += "</table>\n</body>\n</html>\n";
  return h;
}

ReportFiles write_report(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                         const stdfs::path& out, const ReportOptions& options) {
  const auto charts = build_charts(runs, diagnoses, options);
  ReportFiles files;
  files.html = out;
  const stdfs::path dir = out.has_parent_path() ? out.parent_path() : stdfs::path(".");
  fs::ensure_directory(dir);
  const std::string stem = out.stem().string();
  for (const auto& c : charts) {
    const stdfs::path svg = dir / (stem + "-" + c.id + ".svg");
    fs::write_file_atomic(svg, render_svg(c, true));
    files.svgs.push_back(svg);
  }
  fs::write_file_atomic(out, render_html(runs, diagnoses, charts, options));
  return files;
}

}  // namespace tune::report

#include "tune/report/doctor.h"

#include <algorithm>
#include <set>

#include "tune/core/str.h"
#include "tune/report/symptoms.h"

namespace tune::report {

namespace {

Diagnosis from_symptom(const std::string& id, int64_t step, const std::string& message, const std::string& remedy,
                       const std::string& origin) {
  const SymptomRule* rule = find_rule(id);
  return {"symptom", id, "warning", step, message, rule ? rule->cause : "", remedy, rule ? rule->source : "", origin};
}

// The typical step spacing of the step records (the run's log_every).
int64_t record_spacing(const RunData& run) {
  std::vector<int64_t> gaps;
  int64_t prev = -1;
  for (const auto& r : run.records) {
    if (r.eval) continue;
    if (prev >= 0 && r.step > prev) gaps.push_back(r.step - prev);
    prev = r.step;
  }
  if (gaps.empty()) return 1;
  std::nth_element(gaps.begin(), gaps.begin() + static_cast<std::ptrdiff_t>(gaps.size() / 2), gaps.end());
  return gaps[gaps.size() / 2];
}

void block(std::string& out, const Diagnosis& d) {
  if (d.kind == "symptom")
    out += str("symptom ", d.id, " at step ", d.step.value_or(0),
               d.origin == "watcher" ? " (raised by the watcher during the run)" : " (found by the doctor in metrics.jsonl)",
               "\n");
  else
    out += str("config ", d.id, " (", d.severity, ")\n");
  out += str("  evidence: ", d.evidence, "\n");
  if (!d.cause.empty()) out += str("  likely cause: ", d.cause, "\n");
  out += str("  remedy: ", d.remedy, "\n");
  if (!d.source.empty()) out += str("  rule: ", d.source, "\n");
}

std::string verdict(const std::vector<Diagnosis>& findings, const std::string& healthy_what) {
  int64_t symptoms = 0, warnings = 0, notes = 0;
  for (const auto& d : findings) {
    if (d.kind == "symptom") ++symptoms;
    else if (d.severity == "warning") ++warnings;
    else ++notes;
  }
  if (symptoms == 0 && warnings == 0)
    return str("verdict: healthy: ", healthy_what, notes ? str(" (", notes, notes == 1 ? " note" : " notes", " above)") : "",
               "\n");
  return str("verdict: ", symptoms, symptoms == 1 ? " symptom" : " symptoms", ", ", warnings,
             warnings == 1 ? " config warning" : " config warnings", notes ? str(", ", notes, notes == 1 ? " note" : " notes") : "",
             "\n");
}

}  // namespace

RunDiagnosis diagnose_run(const RunData& run, const std::filesystem::path& base) {
  RunDiagnosis d;
  d.trainer = run.trainer;
  d.records = static_cast<int64_t>(run.records.size());
  d.last_step = run.last_step();
  std::set<std::string> seen;
  std::vector<Diagnosis> symptoms;
  for (const auto& s : run.symptoms)
    if (seen.insert(s.id).second) symptoms.push_back(from_symptom(s.id, s.step, s.message, s.remedy, "watcher"));
  // The same table replayed on what was logged (the watcher saw every step; the file holds every log_every-th).
  SymptomWatcher watcher(run.trainer);
  for (const auto& r : run.records) r.eval ? watcher.observe_eval(r.step, r.metrics) : watcher.observe(r.step, r.metrics);
  for (const auto& s : watcher.reported())
    if (seen.insert(s.id).second) symptoms.push_back(from_symptom(s.id, s.step, s.message, s.remedy, "doctor"));
  std::stable_sort(symptoms.begin(), symptoms.end(),
                   [](const Diagnosis& a, const Diagnosis& b) { return a.step.value_or(0) < b.step.value_or(0); });
  d.findings = std::move(symptoms);
  if (const int64_t spacing = record_spacing(run); spacing > 1)
    d.notes.push_back(str("the rules were replayed on the logged records, one every ", spacing,
                          " steps (train.log_every): windows count records, so a replay judges later than the live watcher"));
  if (!run.config.empty()) {
    ConfigContext ctx = config_context(run.config, run.trainer, base, run.manifest);
    for (auto& f : diagnose_config(run.config, run.trainer, ctx)) d.findings.push_back(std::move(f));
    for (auto& n : ctx.notes) d.notes.push_back(std::move(n));
  } else {
    d.notes.push_back("no config.json: the configuration was not checked");
  }
  return d;
}

std::string format_run_diagnosis(const RunData& run, const RunDiagnosis& d) {
  std::string out = str("tune doctor: ", run.dir.string(), " (", d.trainer, ", ", d.records, " records, last step ",
                        d.last_step, ")\n");
  for (const auto& f : d.findings) block(out, f);
  for (const auto& n : d.notes) out += str("note: ", n, "\n");
  out += verdict(d.findings, str("no symptom in ", d.records, " records up to step ", d.last_step, ", no config smell"));
  return out;
}

std::string format_config_diagnosis(const std::string& what, const std::string& trainer, const ConfigContext& context,
                                    const std::vector<Diagnosis>& findings) {
  std::string out = str("tune doctor: ", what, " (", trainer, " config)\n");
  if (context.source_run_config) out += str("the model was made by the run ", context.source_run_dir, "\n");
  for (const auto& f : findings) block(out, f);
  for (const auto& n : context.notes) out += str("note: ", n, "\n");
  out += verdict(findings, "no config smell");
  return out;
}

std::string format_rules() {
  std::string out;
  for (const auto& r : symptom_rules()) {
    out += str(r.id, " [", join(r.trainers, ", "), "] reads ", r.metrics, "\n");
    out += str("  fires when: ", r.fires_when, "\n  likely cause: ", r.cause, "\n  source: ", r.source, "\n");
  }
  return out;
}

}  // namespace tune::report

#pragma once
// `tune report RUN_DIR... --out report.html`: one self-contained HTML file (inline CSS and SVG, no
// script, no link, no external resource) with each run's configuration, the charts of its
// algorithm (several runs overlaid on the same axes), the checkpoints and the best one, the
// symptoms at their steps (also marked on the charts), and sample completions. Every chart is also
// written as its own .svg beside the report (report-loss.svg, ...). Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include "tune/report/chart.h"
#include "tune/report/doctor.h"
#include "tune/report/run_data.h"

namespace tune::report {

struct ReportOptions {
  double smoothing = 0.6;       // EMA weight (0: raw lines only)
  int64_t samples_per_run = 8;  // sample completions shown per run (the latest evaluation's first)
};

// One chart of a report: which metrics it overlays, for which trainers.
struct ChartDef {
  std::string id;
  std::string title;
  std::vector<std::string> trainers;  // empty: every trainer
  std::vector<std::string> keys;      // metric keys; a key ending in '/' takes every key with that prefix
};
const std::vector<ChartDef>& chart_defs();

// The charts that have data in these runs, in chart_defs() order, with the symptoms as markers.
std::vector<ChartSpec> build_charts(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                                    const ReportOptions& options);

std::string render_html(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                        const std::vector<ChartSpec>& charts, const ReportOptions& options);

struct ReportFiles {
  std::filesystem::path html;
  std::vector<std::filesystem::path> svgs;
};

// Reads nothing: runs and diagnoses are given. Writes `out` and <stem>-<chart>.svg beside it,
// each through a temporary name and a rename.
ReportFiles write_report(const std::vector<RunData>& runs, const std::vector<RunDiagnosis>& diagnoses,
                         const std::filesystem::path& out, const ReportOptions& options = {});

}  // namespace tune::report

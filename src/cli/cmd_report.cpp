// tune report RUN_DIR [RUN_DIR ...] --out report.html: one self-contained HTML page (inline SVG and
// CSS, nothing fetched) of one run or several overlaid, each chart also written as an .svg beside it.
// The work is torch-free (tune/report); this file only parses the command line.
#include <iostream>

#include "tune/cli/command.h"
#include "tune/core/error.h"
#include "tune/report/html_report.h"

namespace tune::cli {

Command add_report(CLI::App& app) {
  struct Args {
    std::vector<std::string> runs;
    std::string out = "report.html";
    double smoothing = 0.6;
    int64_t samples = 8;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "report", "an HTML report of runs: curves (several runs overlaid), checkpoints, symptoms, sample completions");
  sub->add_option("runs", args->runs, "run directories (metrics.jsonl, config.json, ...)")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--out,-o", args->out, "the HTML file to write; each chart also goes beside it as <stem>-<chart>.svg")
      ->capture_default_str();
  sub->add_option("--smoothing", args->smoothing, "EMA weight of the curves, as TensorBoard's slider (0: raw values only)")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  sub->add_option("--samples", args->samples, "sample completions shown per run")->check(CLI::NonNegativeNumber)->capture_default_str();
  return {sub, [args] {
            std::vector<report::RunData> runs;
            std::vector<report::RunDiagnosis> diagnoses;
            for (const auto& dir : args->runs) {
              runs.push_back(report::read_run(dir));
              diagnoses.push_back(report::diagnose_run(runs.back()));
            }
            report::ReportOptions options;
            options.smoothing = args->smoothing;
            options.samples_per_run = args->samples;
            const auto files = report::write_report(runs, diagnoses, args->out, options);
            std::cout << files.html.string() << "\n";
            for (const auto& svg : files.svgs) std::cout << svg.string() << "\n";
            return 0;
          }};
}

}  // namespace tune::cli

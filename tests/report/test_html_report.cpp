// The HTML report: the chart set of each algorithm, runs overlaid, nothing external, and the files
// written beside it.
#include <gtest/gtest.h>

#include "report_test_util.h"
#include "tune/core/fs.h"
#include "tune/report/html_report.h"

namespace {

using namespace tune::report;
using tune::Json;
using tune::report::testing::TempDir;
using tune::report::testing::write_lines;
using tune::report::testing::write_text;

RunData make_run(const std::filesystem::path& dir, const std::string& trainer, double lr) {
  Json cfg = {{"output_dir", dir.string()}, {"method", "full"}, {"model", {{"path", "m"}}},
              {"data", {{"eval_fraction", 0.05}}}, {"optim", {{"lr", lr}}}, {"train", {{"max_steps", 40}}}};
  if (trainer == "dpo") cfg["dpo"] = {{"beta", 0.1}, {"loss", "sigmoid"}};
  write_text(dir / "config.json", cfg.dump());
  std::vector<Json> lines;
  lines.push_back({{"step", 0}, {"eval_loss", 1.0}});
  for (int i = 1; i <= 40; ++i) {
    Json r = {{"step", i}, {"loss", 1.0 / i}, {"lr", lr}, {"grad_norm", 1.0}};
    if (trainer == "dpo") {
      r["rewards/margins"] = 0.01 * i;
      r["logps/chosen"] = -5.0;
      r["logps/rejected"] = -6.0;
    }
    lines.push_back(r);
  }
  lines.push_back({{"step", 40}, {"eval_loss", 0.5}});
  write_lines(dir / "metrics.jsonl", lines);
  write_text(dir / "checkpoints.json",
             Json{{"metric_name", "eval_loss"}, {"best", "checkpoint-40"},
                  {"checkpoints", Json::array({Json{{"step", 40}, {"dir", "checkpoint-40"}, {"metric", 0.5}}})}}
                 .dump());
  write_lines(dir / "samples.jsonl", {Json{{"step", 40}, {"kind", "eval"}, {"prompt", "What is <b>2+2</b>?"},
                                           {"completion", "4"}, {"reference", "4"}, {"correct", true}}});
  return read_run(dir);
}

std::vector<std::string> chart_ids(const std::vector<ChartSpec>& charts) {
  std::vector<std::string> ids;
  for (const auto& c : charts) ids.push_back(c.id);
  return ids;
}

TEST(HtmlReport, ChartSetFollowsTheAlgorithm) {
  TempDir dir("html_sets");
  const RunData sft = make_run(dir.path() / "sft", "sft", 1e-3);
  const RunData dpo = make_run(dir.path() / "dpo", "dpo", 5e-4);
  EXPECT_EQ(chart_ids(build_charts({sft}, {}, {})), (std::vector<std::string>{"loss", "lr", "grad_norm"}));
  EXPECT_EQ(chart_ids(build_charts({dpo}, {}, {})), (std::vector<std::string>{"loss", "lr", "grad_norm", "margins", "logps"}));
}

TEST(HtmlReport, RunsOverlayOnTheSameAxes) {
  TempDir dir("html_overlay");
  const RunData a = make_run(dir.path() / "lr-a", "sft", 1e-3);
  const RunData b = make_run(dir.path() / "lr-b", "sft", 3e-3);
  const auto charts = build_charts({a, b}, {}, {});
  const ChartSpec& loss = charts.at(0);
  ASSERT_EQ(loss.lines.size(), 4u);  // loss and eval_loss of each run
  EXPECT_EQ(loss.lines[0].label, "lr-a: loss");
  EXPECT_EQ(loss.lines[2].label, "lr-b: loss");
  EXPECT_EQ(loss.lines[0].color, loss.lines[1].color);  // one colour per run
  EXPECT_NE(loss.lines[0].color, loss.lines[2].color);
  EXPECT_EQ(loss.lines[1].dash, loss.lines[3].dash);    // one dash per metric
  EXPECT_NE(loss.lines[0].dash, loss.lines[1].dash);
  EXPECT_TRUE(loss.lines[0].smooth);
  EXPECT_FALSE(loss.lines[1].smooth);  // eval results are points
}

TEST(HtmlReport, SymptomsBecomeMarkers) {
  TempDir dir("html_markers");
  const RunData run = make_run(dir.path() / "dpo", "dpo", 5e-4);
  RunDiagnosis d;
  d.findings.push_back({"symptom", "chosen_collapse", "warning", 30, "e", "c", "r", "s", "watcher"});
  d.findings.push_back({"config", "no_eval", "warning", std::nullopt, "e", "c", "r", "s", "config"});
  const auto charts = build_charts({run}, {d}, {});
  for (const auto& c : charts) {
    ASSERT_EQ(c.markers.size(), 1u) << c.id;
    EXPECT_EQ(c.markers[0].x, 30);
  }
}

TEST(HtmlReport, PageIsSelfContained) {
  TempDir dir("html_page");
  const RunData a = make_run(dir.path() / "a", "dpo", 5e-4);
  const RunData b = make_run(dir.path() / "b", "dpo", 1e-4);
  const auto diagnoses = std::vector<RunDiagnosis>{diagnose_run(a, dir.path()), diagnose_run(b, dir.path())};
  const std::string html = render_html({a, b}, diagnoses, build_charts({a, b}, diagnoses, {}), {});
  for (const char* banned : {"http:", "https:", "src=", "href", "<script", "<link", "url(", "@import", "<img", "<iframe"})
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  EXPECT_NE(html.find("data-chart=\"margins\""), std::string::npos);
  EXPECT_NE(html.find("What is &lt;b&gt;2+2&lt;/b&gt;?"), std::string::npos);  // samples are escaped
  EXPECT_NE(html.find("<tr class=\"best\"><td>40</td>"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"diff\"><td>optim.lr</td>"), std::string::npos);  // the runs differ there
  EXPECT_EQ(html.find("<tr class=\"diff\"><td>dpo.beta</td>"), std::string::npos);
}

TEST(HtmlReport, WritesTheReportAndOneSvgPerChart) {
  TempDir dir("html_files");
  const RunData run = make_run(dir.path() / "sft", "sft", 1e-3);
  const auto files = write_report({run}, {diagnose_run(run, dir.path())}, dir.path() / "out" / "report.html", {});
  ASSERT_TRUE(std::filesystem::is_regular_file(dir.path() / "out" / "report.html"));
  ASSERT_EQ(files.svgs.size(), 3u);
  EXPECT_EQ(files.svgs[0], dir.path() / "out" / "report-loss.svg");
  const std::string svg = tune::fs::read_file(files.svgs[0]);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("data-key=\"loss\" data-points=\"40\""), std::string::npos);
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "out"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos);  // no temporary left behind
}

}  // namespace

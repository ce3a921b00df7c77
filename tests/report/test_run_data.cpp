// Reading run directories: every file a run writes, a record being written, and errors that name
// the file and line.
#include <gtest/gtest.h>

#include <cmath>

#include "report_test_util.h"
#include "tune/core/error.h"
#include "tune/report/run_data.h"

namespace {

using namespace tune::report;
using tune::Json;
using tune::report::testing::TempDir;
using tune::report::testing::write_lines;
using tune::report::testing::write_text;

Json dpo_config() {
  return Json{{"output_dir", "runs/dpo"}, {"method", "full"}, {"model", {{"path", "m"}}},
              {"data", {{"eval_fraction", 0.05}}}, {"dpo", {{"beta", 0.1}, {"loss", "sigmoid"}}},
              {"optim", {{"lr", 5e-4}}}, {"train", {{"max_steps", 100}}}, {"eval", {{"every", 50}}}};
}

void write_run(const std::filesystem::path& dir) {
  write_text(dir / "config.json", dpo_config().dump(2));
  write_text(dir / "manifest.json", Json{{"created", "2026-12-01T00:00:00Z"}, {"tune_version", "0.1.0"}}.dump());
  std::string metrics;
  metrics += Json{{"step", 0}, {"eval_loss", 0.69}, {"eval_rewards/margins", 0.0}}.dump() + "\n";
  metrics += Json{{"step", 25}, {"loss", 0.6}, {"lr", 1e-4}, {"rewards/margins", 0.2}, {"note", "text"}, {"flag", true},
                  {"nan_metric", nullptr}}.dump() + "\n";
  metrics += "\n";  // blank lines are skipped
  metrics += Json{{"step", 40}, {"symptom", "chosen_collapse"}, {"message", "m"}, {"remedy", "r"}}.dump() + "\n";
  metrics += Json{{"step", 50}, {"loss", 0.5}, {"lr", 2e-4}, {"rewards/margins", 0.4}}.dump() + "\n";
  metrics += Json{{"step", 50}, {"eval_loss", 0.55}, {"eval_rewards/margins", 0.3}}.dump() + "\n";
  metrics += "{\"step\": 75, \"loss\": 0.4";  // being written by the running trainer
  write_text(dir / "metrics.jsonl", metrics);
  write_text(dir / "checkpoints.json",
             Json{{"metric_name", "eval_loss"}, {"greater_is_better", false}, {"best", "checkpoint-50"},
                  {"checkpoints", Json::array({Json{{"step", 50}, {"dir", "checkpoint-50"}, {"metric", 0.55}}})}}
                 .dump());
  write_lines(dir / "samples.jsonl", {Json{{"step", 50}, {"kind", "eval"}, {"prompt", "p"}, {"completion", "c"}}});
}

TEST(RunData, ReadsEveryFileOfARun) {
  TempDir dir("run_data");
  write_run(dir.path() / "dpo-run");
  RunData run = read_run(dir.path() / "dpo-run");
  EXPECT_EQ(run.name, "dpo-run");
  EXPECT_EQ(run.trainer, "dpo");
  EXPECT_EQ(run.manifest["tune_version"], "0.1.0");
  ASSERT_EQ(run.records.size(), 4u);  // the symptom record and the torn line are not metrics
  EXPECT_TRUE(run.records[0].eval);
  EXPECT_FALSE(run.records[1].eval);
  EXPECT_EQ(run.records[1].metrics.count("note"), 0u);        // strings are not metrics
  EXPECT_EQ(run.records[1].metrics.at("flag"), 1.0);          // booleans are 0 / 1 (policy_frozen)
  EXPECT_EQ(run.records[1].metrics.count("nan_metric"), 0u);  // nor null (a NaN written out)
  ASSERT_EQ(run.train.at("loss").size(), 2u);
  EXPECT_EQ(run.train.at("loss").steps, (std::vector<int64_t>{25, 50}));
  EXPECT_DOUBLE_EQ(run.train.at("loss").values[1], 0.5);
  EXPECT_EQ(run.eval.at("eval_loss").steps, (std::vector<int64_t>{0, 50}));
  EXPECT_EQ(run.train.count("eval_loss"), 0u);
  ASSERT_EQ(run.symptoms.size(), 1u);
  EXPECT_EQ(run.symptoms[0].id, "chosen_collapse");
  EXPECT_EQ(run.symptoms[0].step, 40);
  ASSERT_EQ(run.checkpoints.size(), 1u);
  EXPECT_TRUE(run.checkpoints[0].best);
  EXPECT_EQ(run.checkpoint_metric, "eval_loss");
  EXPECT_EQ(run.samples.size(), 1u);
  EXPECT_EQ(run.last_step(), 50);
}

TEST(RunData, ABrokenLineNamesFileAndLine) {
  TempDir dir("run_data_bad");
  write_text(dir.path() / "metrics.jsonl", "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, loss\n{\"step\": 3}\n");
  try {
    read_run(dir.path());
    FAIL() << "no error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2: invalid JSON"), std::string::npos) << e.what();
  }
}

TEST(RunData, ARecordWithoutStepIsAnError) {
  TempDir dir("run_data_nostep");
  write_text(dir.path() / "metrics.jsonl", "{\"step\": 1}\n{\"loss\": 1}\n");
  EXPECT_THROW(read_run(dir.path()), tune::Error);
  write_text(dir.path() / "metrics.jsonl", "[1, 2]\n");
  try {
    read_run(dir.path());
    FAIL() << "no error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:1: expected a JSON object"), std::string::npos) << e.what();
  }
}

TEST(RunData, MissingDirectoryOrMetricsIsAUsageError) {
  TempDir dir("run_data_missing");
  EXPECT_THROW(read_run(dir.path() / "nope"), tune::UsageError);
  EXPECT_THROW(read_run(dir.path()), tune::UsageError);
}

TEST(RunData, TrainerOfAConfig) {
  EXPECT_EQ(trainer_of(dpo_config()), "dpo");
  Json sft = dpo_config();
  sft.erase("dpo");
  EXPECT_EQ(trainer_of(sft), "sft");
  for (const char* algo : {"grpo", "ppo", "rm"}) {
    Json c = sft;
    c[algo] = Json::object();
    EXPECT_EQ(trainer_of(c), algo);
  }
  EXPECT_EQ(trainer_of(Json{{"architectures", {"LlamaForCausalLM"}}}), "");  // a model's config.json
}

TEST(RunData, WithoutConfigTheMetricsTellTheTrainer) {
  TempDir dir("run_data_noconfig");
  write_lines(dir.path() / "metrics.jsonl", {Json{{"step", 1}, {"loss", 0.6}, {"reward", 0.1}, {"kl", 0.01}}});
  EXPECT_EQ(read_run(dir.path()).trainer, "grpo");
}

}  // namespace

namespace {

TEST(RunData, AppendedSamplesReadBack) {
  TempDir dir("run_data_append");
  const auto path = dir.path() / "sub" / "samples.jsonl";
  tune::report::append_json_lines(path, {tune::Json{{"step", 1}, {"completion", "a\nb"}}});
  tune::report::append_json_lines(path, {tune::Json{{"step", 2}, {"x", std::nan("")}}, tune::Json{{"step", 3}}});
  const auto back = tune::report::read_json_lines(path);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0]["completion"], "a\nb");
  EXPECT_TRUE(back[1]["x"].is_null());
}

}  // namespace

// The doctor: config smells (each must fire on its bad setting and stay quiet on the usual one), the
// run that made a model, reference lengths, and a run directory's diagnosis.
#include <gtest/gtest.h>

#include <cmath>

#include "report_test_util.h"
#include "tune/report/doctor.h"
#include "tune/report/symptoms.h"
#include "tune/text/tiny_tokenizer.h"

namespace {

using namespace tune::report;
using tune::Json;
using tune::report::testing::TempDir;
using tune::report::testing::write_lines;
using tune::report::testing::write_text;

Json base_config() {
  return Json{{"method", "full"},
              {"model", {{"path", "m"}}},
              {"lora", {{"r", 16}, {"alpha", 32.0}, {"use_rslora", false}}},
              {"data", {{"eval_fraction", 0.05}, {"eval_path", ""}}},
              {"optim", {{"lr", 1e-6}}},
              {"train", {{"max_steps", 100}}},
              {"eval", {{"every", 0}, {"max_new_tokens", 0}}}};
}

std::vector<std::string> ids(const std::vector<Diagnosis>& v) {
  std::vector<std::string> out;
  for (const auto& d : v) out.push_back(d.id);
  return out;
}

bool has(const std::vector<Diagnosis>& v, const std::string& id) {
  for (const auto& d : v)
    if (d.id == id) return true;
  return false;
}

TEST(ConfigSmells, UsualConfigIsClean) {
  Json c = base_config();
  c["dpo"] = {{"beta", 0.1}, {"loss", "sigmoid"}};
  EXPECT_TRUE(diagnose_config(c, "dpo", {}).empty()) << ids(diagnose_config(c, "dpo", {})).front();
}

TEST(ConfigSmells, DpoBetaOutsideTheUsualRange) {
  Json c = base_config();
  c["dpo"] = {{"beta", 0.001}, {"loss", "sigmoid"}};
  const auto low = diagnose_config(c, "dpo", {});
  ASSERT_TRUE(has(low, "dpo_beta"));
  EXPECT_NE(low[0].remedy.find("raise dpo.beta"), std::string::npos);
  c["dpo"]["beta"] = 2.0;
  EXPECT_TRUE(has(diagnose_config(c, "dpo", {}), "dpo_beta"));
  c["dpo"] = {{"beta", 2.5}, {"loss", "simpo"}};  // SimPO's usual beta
  EXPECT_FALSE(has(diagnose_config(c, "dpo", {}), "dpo_beta"));
  c["dpo"]["beta"] = 0.1;
  EXPECT_TRUE(has(diagnose_config(c, "dpo", {}), "dpo_beta"));
}

TEST(ConfigSmells, LoraRankAndAlpha) {
  Json c = base_config();
  c["method"] = "lora";
  EXPECT_TRUE(diagnose_config(c, "sft", {}).empty());
  c["lora"]["r"] = 2;
  c["lora"]["alpha"] = 4.0;
  EXPECT_EQ(ids(diagnose_config(c, "sft", {})), std::vector<std::string>{"lora_rank"});
  c["lora"]["r"] = 64;
  c["lora"]["alpha"] = 1.0;  // alpha / r = 1/64
  EXPECT_EQ(ids(diagnose_config(c, "sft", {})), std::vector<std::string>{"lora_alpha"});
  c["lora"]["use_rslora"] = true;  // alpha / sqrt(r): the ratio rule does not apply
  EXPECT_TRUE(diagnose_config(c, "sft", {}).empty());
  c["method"] = "full";  // the lora section is ignored under full fine-tuning
  c["lora"]["r"] = 1;
  EXPECT_TRUE(diagnose_config(c, "sft", {}).empty());
}

TEST(ConfigSmells, NoEvalSet) {
  Json c = base_config();
  c["data"]["eval_fraction"] = 0.0;
  EXPECT_EQ(ids(diagnose_config(c, "sft", {})), std::vector<std::string>{"no_eval"});
  c["data"]["eval_path"] = "test.jsonl";
  EXPECT_TRUE(diagnose_config(c, "sft", {}).empty());
  c["train"]["max_steps"] = 2000;  // evaluated only at the end of a long run
  EXPECT_EQ(ids(diagnose_config(c, "sft", {})), std::vector<std::string>{"eval_rare"});
  EXPECT_EQ(diagnose_config(c, "sft", {})[0].severity, "note");
}

TEST(ConfigSmells, RlLrAgainstTheSftRunThatMadeTheModel) {
  ConfigContext ctx;
  ctx.source_run_config = base_config();
  (*ctx.source_run_config)["optim"]["lr"] = 2e-5;
  ctx.source_run_dir = "runs/sft";
  Json c = base_config();
  c["grpo"] = {{"group_size", 8}, {"prompts_per_round", 8}, {"mini_batches", 1}};
  c["optim"]["lr"] = 2e-5;
  auto found = diagnose_config(c, "grpo", ctx);
  ASSERT_EQ(ids(found), std::vector<std::string>{"rl_lr"});
  EXPECT_EQ(found[0].severity, "warning");
  EXPECT_NE(found[0].remedy.find("2e-06"), std::string::npos) << found[0].remedy;
  c["optim"]["lr"] = 5e-6;  // below, but not by 10x
  found = diagnose_config(c, "grpo", ctx);
  ASSERT_EQ(ids(found), std::vector<std::string>{"rl_lr"});
  EXPECT_EQ(found[0].severity, "note");
  c["optim"]["lr"] = 1e-6;
  EXPECT_TRUE(diagnose_config(c, "grpo", ctx).empty());
  EXPECT_TRUE(diagnose_config(c, "grpo", {}).empty());  // no record of the run: nothing to compare
}

TEST(ConfigSmells, GenerationLimitBelowTheReferences) {
  ConfigContext ctx;
  ctx.longest_reference = 10;
  Json c = base_config();
  c["eval"]["max_new_tokens"] = 8;
  EXPECT_EQ(ids(diagnose_config(c, "sft", ctx)), std::vector<std::string>{"eval_limit"});
  c["eval"]["max_new_tokens"] = 0;  // derived from the references
  EXPECT_TRUE(diagnose_config(c, "sft", ctx).empty());
  c["eval"]["max_new_tokens"] = 11;
  EXPECT_TRUE(diagnose_config(c, "sft", ctx).empty());
  Json rl = base_config();
  rl["ppo"] = {{"mini_batch_size", 16}};
  rl["rollout"] = {{"max_new_tokens", 6}};
  EXPECT_EQ(ids(diagnose_config(rl, "ppo", ctx)), std::vector<std::string>{"eval_limit"});
}

TEST(ConfigSmells, RlBatchTooSmall) {
  Json c = base_config();
  c["grpo"] = {{"group_size", 2}, {"prompts_per_round", 16}, {"mini_batches", 1}};
  EXPECT_EQ(ids(diagnose_config(c, "grpo", {})), std::vector<std::string>{"rl_group"});
  c["grpo"] = {{"group_size", 8}, {"prompts_per_round", 4}, {"mini_batches", 4}};  // 8 completions per step
  EXPECT_EQ(ids(diagnose_config(c, "grpo", {})), std::vector<std::string>{"rl_batch"});
  c["grpo"] = {{"group_size", 8}, {"prompts_per_round", 8}, {"mini_batches", 2}};
  EXPECT_TRUE(diagnose_config(c, "grpo", {}).empty());
  Json p = base_config();
  p["ppo"] = {{"mini_batch_size", 4}};
  EXPECT_EQ(ids(diagnose_config(p, "ppo", {})), std::vector<std::string>{"rl_batch"});
  p["ppo"]["mini_batch_size"] = 16;
  EXPECT_TRUE(diagnose_config(p, "ppo", {}).empty());
}

// A model directory made by an sft run (<run>/final), with the tiny tokenizer, and an eval file.
void make_sft_run(const std::filesystem::path& run) {
  Json cfg = base_config();
  cfg["optim"]["lr"] = 3e-3;
  write_text(run / "config.json", cfg.dump());
  write_text(run / "manifest.json", "{}");
  write_text(run / "final" / "tokenizer.json", tune::text::tiny_tokenizer_json().dump());
  write_text(run / "final" / "tokenizer_config.json", tune::text::tiny_tokenizer_config_json().dump());
}

TEST(ConfigContext, FindsTheRunThatMadeTheModelAndMeasuresReferences) {
  TempDir dir("doctor_ctx");
  make_sft_run(dir.path() / "runs" / "sft");
  write_lines(dir.path() / "test.jsonl",
              {Json{{"messages", Json::array({Json{{"role", "user"}, {"content", "2+2"}},
                                              Json{{"role", "assistant"}, {"content", "4"}}})}},
               Json{{"messages", Json::array({Json{{"role", "user"}, {"content", "123+456"}},
                                              Json{{"role", "assistant"}, {"content", "579 579 579"}}})}}});
  Json c = base_config();
  c["model"]["path"] = "runs/sft/final";
  c["data"] = {{"datasets", Json::array({Json{{"path", "test.jsonl"}}})}, {"eval_path", "test.jsonl"}};
  c["eval"] = {{"generate", true}, {"max_new_tokens", 2}, {"max_samples", 200}};
  const ConfigContext ctx = config_context(c, "sft", dir.path());
  ASSERT_TRUE(ctx.source_run_config.has_value()) << (ctx.notes.empty() ? "" : ctx.notes[0]);
  EXPECT_DOUBLE_EQ((*ctx.source_run_config)["optim"]["lr"].get<double>(), 3e-3);
  ASSERT_TRUE(ctx.longest_reference.has_value()) << (ctx.notes.empty() ? "" : ctx.notes[0]);
  EXPECT_EQ(*ctx.longest_reference, 11);  // digits are single tokens: "579 579 579" is 9 digits and 2 spaces
  EXPECT_TRUE(has(diagnose_config(c, "sft", ctx), "eval_limit"));
}

TEST(ConfigContext, MissingModelIsANoteNotAnError) {
  TempDir dir("doctor_ctx_missing");
  Json c = base_config();
  c["model"]["path"] = "nowhere";
  const ConfigContext ctx = config_context(c, "dpo", dir.path());
  EXPECT_FALSE(ctx.source_run_config.has_value());
  ASSERT_EQ(ctx.notes.size(), 1u);
  EXPECT_NE(ctx.notes[0].find("nowhere"), std::string::npos);
}

// A DPO run directory: config, metrics logged every step with the given stream.
RunData dpo_run(const std::filesystem::path& dir, bool collapse, bool logged_symptom) {
  Json cfg = base_config();
  cfg["dpo"] = {{"beta", 0.1}, {"loss", "sigmoid"}};
  write_text(dir / "config.json", cfg.dump());
  std::vector<Json> lines;
  for (int i = 1; i <= 120; ++i) {
    const double t = std::min(i, 100) / 100.0, noise = (i % 2 ? 1 : -1) * 0.02;
    lines.push_back(Json{{"step", i}, {"loss", 0.69 - 0.09 * t + noise}, {"rewards/margins", 1.0 + 0.3 * t},
                         {"logps/chosen", collapse ? -4.4 - 6.6 * t + 20 * noise : -4.4 + 20 * noise}});
    if (logged_symptom && i == 80) lines.push_back(Json{{"step", 80}, {"symptom", "chosen_collapse"}, {"message", "live"}, {"remedy", "r"}});
  }
  write_lines(dir / "metrics.jsonl", lines);
  return read_run(dir);
}

TEST(DoctorRun, ReportsTheWatchersSymptomWithCauseAndRemedy) {
  TempDir dir("doctor_run_logged");
  const RunData run = dpo_run(dir.path(), true, true);
  const RunDiagnosis d = diagnose_run(run, dir.path());
  ASSERT_FALSE(d.findings.empty());
  EXPECT_EQ(d.findings[0].id, "chosen_collapse");
  EXPECT_EQ(d.findings[0].origin, "watcher");  // the live record wins over the replay
  EXPECT_EQ(d.findings[0].step, 80);
  EXPECT_EQ(d.findings[0].cause, find_rule("chosen_collapse")->cause);
  const std::string text = format_run_diagnosis(run, d);
  EXPECT_NE(text.find("symptom chosen_collapse at step 80"), std::string::npos) << text;
  EXPECT_NE(text.find("likely cause: beta too low"), std::string::npos) << text;
  EXPECT_NE(text.find("verdict: 1 symptom"), std::string::npos) << text;
}

TEST(DoctorRun, ReplaysTheTableWhenNothingWasLogged) {
  TempDir dir("doctor_run_replay");
  const RunDiagnosis d = diagnose_run(dpo_run(dir.path(), true, false), dir.path());
  ASSERT_TRUE(has(d.findings, "chosen_collapse"));
  EXPECT_EQ(d.findings[0].origin, "doctor");
}

TEST(DoctorRun, AHealthyRunSaysSo) {
  TempDir dir("doctor_run_healthy");
  const RunData run = dpo_run(dir.path(), false, false);
  const RunDiagnosis d = diagnose_run(run, dir.path());
  EXPECT_TRUE(d.findings.empty()) << d.findings[0].id;
  EXPECT_NE(format_run_diagnosis(run, d).find("verdict: healthy"), std::string::npos);
}

TEST(DoctorRules, EveryRuleIsListed) {
  const std::string text = format_rules();
  for (const auto& r : symptom_rules()) EXPECT_NE(text.find(r.id + " ["), std::string::npos) << r.id;
}

}  // namespace

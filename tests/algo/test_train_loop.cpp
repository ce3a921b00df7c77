// The shared step loop: a skipped step (no label tokens, or non-finite) does not advance, so it
// must not repeat the evaluation, the metrics record or the checkpoint of the step already reached;
// the output-directory rule of a fresh run.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <filesystem>

#include "support/temp_dir.h"
#include "tune/algo/run.h"
#include "tune/algo/train_loop.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/data/batch_iterator.h"
#include "tune/core/str.h"
#include "tune/report/run_data.h"

namespace {

using namespace tune;
namespace stdfs = std::filesystem;

// Micro-batches from a script: a count of 0 makes an empty step.
struct ScriptedBatches {
  std::deque<int64_t> label_counts;
  int64_t served = 0;
  std::optional<data::Batch> next() {
    data::Batch b;
    b.input_ids = torch::ones({1, 2}, torch::kInt64);
    b.attention_mask = torch::ones({1, 2}, torch::kInt64);
    b.labels = b.input_ids.clone();
    b.position_ids = torch::zeros({1, 2}, torch::kInt64);
    b.sample_ids = torch::ones({1, 2}, torch::kInt64);
    b.num_label_tokens = label_counts.empty() ? 1 : label_counts.front();
    if (!label_counts.empty()) label_counts.pop_front();
    b.num_samples = 1;
    ++served;
    return b;
  }
  data::IteratorState state() const { return {0, served}; }
  Json state_json() const { return state().to_json(); }
  void restore(const Json&) {}
};

TEST(TrainLoop, ASkippedStepRepeatsNoEvaluationRecordOrCheckpoint) {
  const stdfs::path dir = tune::test::fresh_path("skip-gating");
  algo::LoopSection loop;
  loop.log_every = 1;
  loop.save_every = 1;
  loop.keep_last = 0;
  const int64_t total = 3;
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  algo::OptimSection optim;
  optim.lr = 0.1;
  optim.warmup_ratio = 0;
  algo::Optimization opt({{"w", w}}, optim, loop, total);
  algo::Run run(dir, Json{{"test", true}}, {}, loop, total, train::CheckpointPolicy{});

  ScriptedBatches batches;
  batches.label_counts = {1, 0, 0, 1, 1};  // the second and third steps are empty: skipped
  std::vector<int64_t> evaluated;
  algo::LoopHooks<data::Batch> hooks;
  hooks.count = [](const data::Batch& b) { return static_cast<double>(b.num_label_tokens); };
  hooks.loss = [&](const data::Batch& b) { return train::StepLoss{(w * static_cast<double>(b.num_label_tokens)).sum(), {}}; };
  hooks.evaluate = [&](int64_t step) -> std::optional<double> {
    evaluated.push_back(step);
    return std::nullopt;
  };
  algo::train_loop(run, opt, batches, loop, /*eval_every=*/1, /*resume=*/"", torch::kCPU, hooks);

  EXPECT_EQ(batches.served, 5);
  EXPECT_EQ(evaluated, (std::vector<int64_t>{1, 2, 3}));
  std::vector<int64_t> logged;
  for (const auto& line : split(fs::read_file(dir / "metrics.jsonl"), '\n'))
    if (!line.empty()) logged.push_back(Json::parse(line).at("step").get<int64_t>());
  EXPECT_EQ(logged, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(opt.stepper->total_skips(), 2);
  stdfs::remove_all(dir);
}

// log.tensorboard: each metrics record also becomes one event (symptom records do not), and a
// fresh start replaces the event files of an earlier attempt.
TEST(TrainLoop, TensorBoardEventsBesideMetrics) {
  const stdfs::path dir = tune::test::fresh_path("tensorboard");
  algo::LoopSection loop;
  algo::LogSection log;
  log.tensorboard = true;
  auto events = [&] {
    std::vector<stdfs::path> found;
    for (const auto& e : stdfs::directory_iterator(dir))
      if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) found.push_back(e.path());
    return found;
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    algo::Run run(dir, Json{{"test", true}}, {}, loop, 2, train::CheckpointPolicy{}, log);
    train::TrainingState state;
    run.resume("", state);
    run.log(1, {{"loss", 0.5}, {"note", "text"}});
    run.log(1, {{"symptom", "loss_spike"}, {"message", "m"}, {"remedy", "r"}});
    run.log(2, {{"loss", 0.25}, {"eval_loss", 0.3}});
    run.log_samples({Json{{"step", 2}, {"kind", "eval"}, {"completion", "c"}}});
  }
  const auto files = events();
  ASSERT_EQ(files.size(), 1u);  // the second fresh start removed the first attempt's file
  // Three records: file_version and two scalar events (the symptom record is not a scalar event).
  const std::string bytes = fs::read_file(files[0]);
  size_t at = 0, records = 0;
  while (at + 12 <= bytes.size()) {
    uint64_t n = 0;
    std::memcpy(&n, bytes.data() + at, 8);
    at += 12 + n + 4;
    ++records;
  }
  EXPECT_EQ(at, bytes.size());
  EXPECT_EQ(records, 3u);
  EXPECT_EQ(report::read_json_lines(dir / "samples.jsonl").size(), 1u);  // a fresh start replaced it too
  stdfs::remove_all(dir);
}

TEST(TrainLoop, AFreshRunRefusesANonEmptyOutputDirectory) {
  const stdfs::path dir = tune::test::fresh_path("claim");
  EXPECT_NO_THROW(algo::claim_output_dir(dir, "", false, false));  // missing: fine
  stdfs::create_directories(dir);
  EXPECT_NO_THROW(algo::claim_output_dir(dir, "", false, false));  // empty: fine
  fs::write_file_atomic(dir / "manifest.json", "{}");
  fs::write_file_atomic(dir / "metrics.jsonl", "{\"step\": 1}\n");
  try {
    algo::claim_output_dir(dir, "", false, false);
    FAIL() << "a fresh run into an earlier run's directory must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(algo::claim_output_dir(dir, "auto", false, false));  // continuing it: fine
  algo::claim_output_dir(dir, "", /*overwrite=*/true, /*dry_run=*/true);
  EXPECT_TRUE(stdfs::exists(dir / "metrics.jsonl"));  // a dry run removes nothing
  algo::claim_output_dir(dir, "", /*overwrite=*/true, /*dry_run=*/false);
  EXPECT_FALSE(stdfs::exists(dir));
  // A directory that is not a run is never deleted, even with --overwrite.
  stdfs::create_directories(dir);
  fs::write_file_atomic(dir / "notes.txt", "mine");
  EXPECT_THROW(algo::claim_output_dir(dir, "", true, false), UsageError);
  EXPECT_TRUE(stdfs::exists(dir / "notes.txt"));
  stdfs::remove_all(dir);
}

}  // namespace

// Checkpoints: a resumed run equals an uninterrupted one bit for bit; retention and best; a save
// that fails or is killed midway leaves the previous checkpoint loadable and no partial directory.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <random>

#include "support/temp_dir.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/json.h"
#include "tune/ops/token_logprob.h"
#include "tune/train/checkpoint.h"
#include "tune/train/optimizer.h"
#include "tune/train/stepper.h"

namespace {

namespace stdfs = std::filesystem;
using namespace tune::train;
using torch::Tensor;

// A small training run whose every source of state matters: AdamW moments with weight decay, a
// warmup + cosine schedule, dropout (torch CPU generator), a shuffling engine and a data cursor.
struct TinyRun {
  static constexpr int64_t kTotalSteps = 10;
  Tensor data_x, data_y;  // [64, 4], [64]
  torch::nn::Sequential model;
  NamedParameters params;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<Stepper> stepper;
  std::mt19937_64 shuffle;
  int64_t cursor = 0;  // batches consumed
  std::vector<double> losses;

  explicit TinyRun(uint64_t init_seed) : shuffle(init_seed) {
    torch::manual_seed(0);
    data_x = torch::randn({64, 4});
    data_y = torch::randint(3, {64}, torch::kLong);
    torch::manual_seed(init_seed);
    model = torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::Dropout(0.2), torch::nn::Tanh(),
                                  torch::nn::Linear(16, 3));
    params = named_parameters_of(*model);
    AdamWConfig ac;
    ac.lr = 1e-2;
    ac.weight_decay = 0.1;
    optimizer = make_adamw(params, ac);
    stepper = std::make_unique<Stepper>(*optimizer, LrSchedule({ScheduleKind::cosine, 2, 0.0, 0.1}, 1e-2, kTotalSteps));
  }

  void train(int64_t steps) {
    for (int64_t s = 0; s < steps; ++s) {
      // Two micro-batches of 8 random rows each.
      std::uniform_int_distribution<int64_t> pick(0, 63);
      std::vector<Tensor> idx;
      for (int m = 0; m < 2; ++m) {
        std::vector<int64_t> rows;
        for (int i = 0; i < 8; ++i) rows.push_back(pick(shuffle));
        idx.push_back(torch::tensor(rows, torch::kLong));
      }
      ++cursor;
      StepResult r = stepper->step({8, 8}, [&](int m) {
        Tensor logits = model->forward(data_x.index_select(0, idx[m]));  // [8, 3]
        return StepLoss{-tune::ops::token_logprob(logits, data_y.index_select(0, idx[m])).logprob.sum(), {}};
      });
      ASSERT_TRUE(r.applied);
      losses.push_back(r.loss);
    }
  }

  TrainingState state() {
    return TrainingState{params, optimizer.get(), stepper.get(), &shuffle, tune::Json{{"cursor", cursor}},
                         tune::Json{{"losses", losses}}};
  }
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = torch::get_num_threads();
    torch::set_num_threads(1);  // bit-exact CPU runs
  }
  void TearDown() override { torch::set_num_threads(threads_); }
  int threads_ = 1;
};

TEST_F(CheckpointTest, ResumedRunEqualsUninterruptedRunBitForBit) {
  TinyRun straight(42);
  straight.train(10);

  stdfs::path dir = tune::test::fresh_dir("resume");
  {
    TinyRun first(42);
    first.train(5);
    CheckpointManager manager(dir);
    manager.save(first.state());
    // Move every source of randomness on, as a crashed process would have.
    torch::randn({100});
    first.shuffle.discard(1000);
  }
  TinyRun resumed(999);  // a different init: everything must come from the checkpoint
  CheckpointManager manager(dir);
  auto latest = manager.latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "checkpoint-5");
  TrainingState state = resumed.state();
  manager.load(*latest, state);
  resumed.cursor = state.data_position.at("cursor").get<int64_t>();
  resumed.losses = state.metrics.at("losses").get<std::vector<double>>();
  EXPECT_EQ(resumed.cursor, 5);
  EXPECT_EQ(resumed.stepper->steps_done(), 5);
  resumed.train(5);

  ASSERT_EQ(resumed.losses.size(), straight.losses.size());
  for (size_t i = 0; i < straight.losses.size(); ++i) EXPECT_EQ(resumed.losses[i], straight.losses[i]) << "step " << i;
  for (size_t i = 0; i < straight.params.size(); ++i)
    EXPECT_TRUE(torch::equal(resumed.params[i].second, straight.params[i].second)) << straight.params[i].first;
  stdfs::remove_all(dir);
}

TEST_F(CheckpointTest, WithoutTheRngStatesTheRunDiverges) {
  // The control for the test above: restoring parameters and optimizer alone is not enough here.
  TinyRun straight(42);
  straight.train(6);
  stdfs::path dir = tune::test::fresh_dir("control");
  TinyRun first(42);
  first.train(5);
  CheckpointManager manager(dir);
  manager.save(first.state());
  TinyRun resumed(999);
  TrainingState state = resumed.state();
  manager.load(*manager.latest(), state);
  torch::manual_seed(5);  // lose the torch generator state
  resumed.train(1);
  EXPECT_NE(resumed.losses.back(), straight.losses.back());
  stdfs::remove_all(dir);
}

TEST_F(CheckpointTest, KeepsLastNAndTheBestAndPointsAtTheLatest) {
  stdfs::path dir = tune::test::fresh_dir("retention");
  TinyRun run(1);
  CheckpointManager manager(dir, {2, "eval_loss", false});
  const double metric[] = {0.5, 0.3, 0.4, 0.6, 0.7};
  for (int s = 1; s <= 5; ++s) manager.save(run.state(), metric[s - 1], s);
  std::vector<std::string> present;
  for (const auto& e : stdfs::directory_iterator(dir))
    if (e.is_directory()) present.push_back(e.path().filename().string());
  std::sort(present.begin(), present.end());
  EXPECT_EQ(present, (std::vector<std::string>{"checkpoint-2", "checkpoint-4", "checkpoint-5"}));
  EXPECT_EQ(manager.latest()->filename(), "checkpoint-5");
  EXPECT_EQ(manager.best()->filename(), "checkpoint-2");
  tune::Json index = tune::read_json_file(dir / "checkpoints.json");
  EXPECT_EQ(index["best"], "checkpoint-2");
  EXPECT_EQ(index["checkpoints"].size(), 3u);
  EXPECT_EQ(tune::read_json_file(dir / "checkpoint-4" / "state.json")["eval_metric"], 0.6);

  // Higher is better (accuracy): the best moves to the newest.
  stdfs::path dir2 = tune::test::fresh_dir("retention-max");
  CheckpointManager acc(dir2, {1, "accuracy", true});
  for (int s = 1; s <= 3; ++s) acc.save(run.state(), 0.1 * s, s);
  EXPECT_EQ(acc.best()->filename(), "checkpoint-3");
  EXPECT_FALSE(stdfs::exists(dir2 / "checkpoint-1"));
  // Without the pointer file the newest complete checkpoint is found by scanning.
  stdfs::remove(dir2 / "latest");
  EXPECT_EQ(acc.latest()->filename(), "checkpoint-3");
  stdfs::remove_all(dir);
  stdfs::remove_all(dir2);
}

bool has_entry_starting(const stdfs::path& dir, const std::string& prefix) {
  for (const auto& e : stdfs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

void expect_previous_checkpoint_intact(const stdfs::path& dir) {
  EXPECT_FALSE(stdfs::exists(dir / "checkpoint-6"));
  CheckpointManager manager(dir);
  ASSERT_EQ(manager.latest()->filename(), "checkpoint-5");
  TinyRun other(7);
  TrainingState state = other.state();
  manager.load(*manager.latest(), state);
  EXPECT_EQ(other.stepper->steps_done(), 5);
  EXPECT_EQ(state.data_position.at("cursor"), 5);
}

TEST_F(CheckpointTest, FailedSaveLeavesPreviousCheckpointAndNoPartialDirectory) {
  stdfs::path dir = tune::test::fresh_dir("fault-throw");
  TinyRun run(3);
  run.train(5);
  CheckpointManager manager(dir);
  manager.save(run.state());
  run.train(1);
  manager.on_save_stage = [](std::string_view stage) {
    if (stage == "optimizer") throw tune::Error("disk full (injected)");
  };
  EXPECT_THROW(manager.save(run.state()), tune::Error);
  EXPECT_FALSE(has_entry_starting(dir, "checkpoint-6"));  // not even the temporary
  expect_previous_checkpoint_intact(dir);
  stdfs::remove_all(dir);
}

TEST_F(CheckpointTest, SaveKilledMidwayLeavesPreviousCheckpointAndNoPartialDirectory) {
  stdfs::path dir = tune::test::fresh_dir("fault-kill");
  TinyRun run(3);
  run.train(5);
  {
    CheckpointManager manager(dir);
    manager.save(run.state());
  }
  run.train(1);
  std::fflush(nullptr);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child dies by SIGKILL after writing parameters and optimizer, before the rename.
    CheckpointManager manager(dir);
    manager.on_save_stage = [](std::string_view stage) {
      if (stage == "rng") ::raise(SIGKILL);
    };
    try {
      manager.save(run.state());
    } catch (...) {
    }
    ::_exit(0);  // only reached if the kill did not happen
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  // The killed save left its temporary directory behind, never a checkpoint-6.
  EXPECT_TRUE(has_entry_starting(dir, "checkpoint-6.tmp-"));
  expect_previous_checkpoint_intact(dir);
  // Opening the run (expect_previous_checkpoint_intact did) cleared the leftover.
  EXPECT_FALSE(has_entry_starting(dir, "checkpoint-6"));
  stdfs::remove_all(dir);
}

// A crash while replacing checkpoint-5 (saving step 5 again) after the complete copy was moved
// aside and before the new one was renamed in: the moved copy is the only complete checkpoint-5,
// so opening the run restores it instead of deleting it.
TEST_F(CheckpointTest, CrashWhileReplacingRestoresTheMovedAsideCopy) {
  stdfs::path dir = tune::test::fresh_dir("fault-replace");
  TinyRun run(3);
  run.train(5);
  {
    CheckpointManager manager(dir);
    manager.save(run.state());
  }
  stdfs::rename(dir / "checkpoint-5", dir / "checkpoint-5.tmp-999-0");  // moved aside by replace_directory
  stdfs::create_directories(dir / "checkpoint-5.tmp-999-1");             // the new copy, half written
  tune::fs::write_file_atomic(dir / "checkpoint-5.tmp-999-1" / "parameters.pt", "partial");
  stdfs::create_directories(dir / "checkpoint-9.tmp-999-2");             // an unrelated half-written save
  expect_previous_checkpoint_intact(dir);
  EXPECT_TRUE(stdfs::is_regular_file(dir / "checkpoint-5" / "state.json"));
  EXPECT_FALSE(has_entry_starting(dir, "checkpoint-5.tmp-"));
  EXPECT_FALSE(has_entry_starting(dir, "checkpoint-9"));
  stdfs::remove_all(dir);
}

TEST_F(CheckpointTest, LoadRejectsMismatchedParameters) {
  stdfs::path dir = tune::test::fresh_dir("mismatch");
  TinyRun run(3);
  CheckpointManager manager(dir);
  manager.save(run.state(), std::nullopt, 1);
  TrainingState state = run.state();
  state.parameters[0].first = "renamed.weight";
  try {
    manager.load(dir / "checkpoint-1", state);
    FAIL() << "expected an error";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no parameter 'renamed.weight'"), std::string::npos) << e.what();
  }
  state = run.state();
  state.parameters.pop_back();
  EXPECT_THROW(manager.load(dir / "checkpoint-1", state), tune::Error);
  EXPECT_THROW(manager.load(dir / "checkpoint-9", state), tune::Error);
  stdfs::remove_all(dir);
}

}  // namespace

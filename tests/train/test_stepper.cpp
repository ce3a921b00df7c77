// The stepper: loss/gradient invariance to the micro-batch split and to data-parallel size,
// non-finite skipping, empty steps, metric means.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tune/core/error.h"
#include "tune/ops/token_logprob.h"
#include "tune/train/loss_scale.h"
#include "tune/train/optimizer.h"
#include "tune/train/stepper.h"

namespace {

using namespace tune::train;
using torch::Tensor;

// A token classifier over [B, T, 4] inputs with 3 classes; rows of very different lengths so a
// per-micro-batch mean would weight tokens unequally.
struct Batch {
  Tensor x;       // [B, T, 4]
  Tensor labels;  // [B, T], -100 past each row's length
};

Batch make_batch() {
  torch::manual_seed(7);
  const int64_t B = 8, T = 9;
  Batch b{torch::randn({B, T, 4}), torch::randint(3, {B, T}, torch::kLong)};
  const int64_t lengths[B] = {9, 1, 3, 7, 2, 8, 5, 1};
  for (int64_t i = 0; i < B; ++i)
    if (lengths[i] < T) b.labels[i].narrow(0, lengths[i], T - lengths[i]).fill_(-100);
  return b;
}

torch::nn::Sequential make_model() {
  torch::manual_seed(3);
  return torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::Tanh(), torch::nn::Linear(16, 3));
}

Tensor summed_loss(torch::nn::Sequential& model, const Tensor& x, const Tensor& labels) {
  Tensor logits = model->forward(x).reshape({-1, 3});                           // [b * T, 3]
  return -tune::ops::token_logprob(logits, labels.reshape({-1})).logprob.sum();  // summed over label tokens
}

struct Outcome {
  StepResult result;
  std::vector<Tensor> params;  // after one SGD step with lr 1: p0 - grad
};

// One optimizer step over the batch cut into `micro` contiguous micro-batches (uneven sizes).
Outcome run_split(int micro, Communicator* comm = nullptr) {
  Batch b = make_batch();
  auto model = make_model();
  auto params = named_parameters_of(*model);
  std::vector<Tensor> tensors;
  for (auto& p : params) tensors.push_back(p.second);
  torch::optim::SGD sgd(tensors, torch::optim::SGDOptions(1.0));
  Stepper stepper(sgd, LrSchedule({ScheduleKind::constant, 0, 0.0, 0.0}, 1.0, 10), {/*max_grad_norm=*/0.0, 5}, comm);
  std::vector<Tensor> xs = b.x.tensor_split(micro), ys = b.labels.tensor_split(micro);
  std::vector<double> counts;
  for (auto& y : ys) counts.push_back(static_cast<double>(count_label_tokens(y)));
  StepResult r = stepper.step(counts, [&](int i) { return StepLoss{summed_loss(model, xs[i], ys[i]), {}}; });
  Outcome out{r, {}};
  for (auto& p : params) out.params.push_back(p.second.detach().clone());
  return out;
}

void expect_same_update(const Outcome& a, const Outcome& b, const std::string& what) {
  EXPECT_NEAR(a.result.loss, b.result.loss, 1e-6 * std::abs(a.result.loss)) << what;
  EXPECT_NEAR(a.result.grad_norm, b.result.grad_norm, 1e-6 * a.result.grad_norm) << what;
  for (size_t i = 0; i < a.params.size(); ++i) {
    // fp32 rounding of sums taken in another order: 1e-6 of the largest entry.
    double err = (a.params[i] - b.params[i]).abs().max().item<double>();
    EXPECT_LE(err, 1e-6 * a.params[i].abs().max().item<double>()) << what << " parameter " << i;
  }
}

TEST(Stepper, LossAndGradientIndependentOfMicroBatchSplit) {
  Outcome whole = run_split(1);
  EXPECT_TRUE(whole.result.applied);
  EXPECT_EQ(whole.result.normalizer, 36);  // 9 + 1 + 3 + 7 + 2 + 8 + 5 + 1
  // The loss is the mean token loss of the whole batch, computed directly here.
  {
    Batch b = make_batch();
    auto model = make_model();
    double direct = (summed_loss(model, b.x, b.labels) / 36).item<double>();
    EXPECT_NEAR(whole.result.loss, direct, 1e-6 * std::abs(direct));
  }
  for (int micro : {2, 4, 8}) {
    Outcome split = run_split(micro);
    EXPECT_EQ(split.result.normalizer, 36);
    expect_same_update(whole, split, tune::str(micro, " micro-batches"));
  }
}

TEST(Stepper, PerMicroBatchMeanWouldDiffer) {
  // The control: the classic normalisation (mean per micro-batch, averaged) gives another loss on
  // this data, so the test above can tell the two apart.
  Batch b = make_batch();
  auto model = make_model();
  auto xs = b.x.tensor_split(4), ys = b.labels.tensor_split(4);
  double naive = 0;
  for (int i = 0; i < 4; ++i) naive += (summed_loss(model, xs[i], ys[i]) / count_label_tokens(ys[i])).item<double>() / 4;
  double global = (summed_loss(model, b.x, b.labels) / 36).item<double>();
  EXPECT_GT(std::abs(naive - global), 1e-3);
}

// Simulates a second rank that holds an identical copy of the data: every sum doubles.
class MirroredPairCommunicator final : public Communicator {
 public:
  int world_size() const override { return 2; }
  int rank() const override { return 0; }
  void all_reduce_sum(std::vector<Tensor>& tensors) override {
    ++calls;
    for (auto& t : tensors) t.mul_(2);
  }
  void broadcast(std::vector<Tensor>&, int) override {}
  void barrier() override {}
  int calls = 0;
};

TEST(Stepper, DataParallelSumOverRanksGivesTheSameUpdate) {
  MirroredPairCommunicator comm;
  Outcome two = run_split(2, &comm);
  EXPECT_EQ(comm.calls, 3);  // token count, loss/metric sums, gradients
  EXPECT_EQ(two.result.normalizer, 72);
  expect_same_update(run_split(1), two, "two mirrored ranks");
}

struct Tiny {
  Tensor w = torch::ones({3}, torch::requires_grad());
  torch::optim::SGD sgd{std::vector<Tensor>{w}, torch::optim::SGDOptions(0.1)};
  Stepper stepper{sgd, LrSchedule({ScheduleKind::constant, 0, 0.0, 0.0}, 0.1, 100), {1.0, 3}};
  StepResult step(double scale) {
    return stepper.step({3}, [&](int) { return StepLoss{(w * scale).sum(), {{"hits", {2.0, 3.0}}}}; });
  }
};

TEST(Stepper, NonFiniteStepsAreSkippedThenFatal) {
  Tiny t;
  StepResult ok = t.step(1.0);
  ASSERT_TRUE(ok.applied);
  EXPECT_EQ(ok.step, 1);
  // loss = sum(w) / 3 = 1; grad = 1/3 per entry, norm sqrt(3)/3 < 1: no clipping; w <- 1 - 0.1/3
  EXPECT_NEAR(ok.loss, 1.0, 1e-7);
  EXPECT_NEAR(ok.grad_norm, std::sqrt(3.0) / 3, 1e-7);
  EXPECT_NEAR(ok.metrics.at("hits"), 2.0 / 3, 1e-12);
  EXPECT_TRUE(torch::allclose(t.w, torch::full({3}, 1 - 0.1 / 3)));
  Tensor before = t.w.detach().clone();

  StepResult bad = t.step(NAN);
  EXPECT_FALSE(bad.applied);
  EXPECT_NE(bad.skip_reason.find("non-finite loss"), std::string::npos) << bad.skip_reason;
  EXPECT_TRUE(torch::equal(t.w, before));
  EXPECT_FALSE(t.w.grad().defined());  // zeroed (set to none) so nothing leaks into the next step
  EXPECT_EQ(t.stepper.steps_done(), 1);
  EXPECT_EQ(t.stepper.consecutive_skips(), 1);
  t.step(INFINITY);
  EXPECT_EQ(t.stepper.consecutive_skips(), 2);
  ASSERT_TRUE(t.step(1.0).applied);  // a good step resets the run of skips
  EXPECT_EQ(t.stepper.consecutive_skips(), 0);
  EXPECT_EQ(t.stepper.total_skips(), 2);
  t.step(NAN);
  t.step(NAN);
  try {
    t.step(NAN);
    FAIL() << "three non-finite steps in a row must throw";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 optimizer steps in a row"), std::string::npos) << e.what();
  }
}

TEST(Stepper, NonFiniteGradientWithFiniteLossIsSkipped) {
  Tensor w = torch::zeros({2}, torch::requires_grad());
  torch::optim::SGD sgd(std::vector<Tensor>{w}, torch::optim::SGDOptions(0.1));
  Stepper stepper(sgd, LrSchedule({ScheduleKind::constant, 0, 0.0, 0.0}, 0.1, 10));
  // sqrt at 0: value 0, derivative infinite.
  StepResult r = stepper.step({1}, [&](int) { return StepLoss{torch::sqrt(w).sum(), {}}; });
  EXPECT_FALSE(r.applied);
  EXPECT_NE(r.skip_reason.find("gradient norm"), std::string::npos) << r.skip_reason;
}

TEST(Stepper, ClipsToMaxNormAndReportsTheNormBefore) {
  Tensor w = torch::zeros({2}, torch::requires_grad());
  torch::optim::SGD sgd(std::vector<Tensor>{w}, torch::optim::SGDOptions(1.0));
  Stepper stepper(sgd, LrSchedule({ScheduleKind::constant, 0, 0.0, 0.0}, 1.0, 10), {0.5, 5});
  // grad = [3, 4] (norm 5), clipped to norm 0.5 -> [0.3, 0.4]; w <- -[0.3, 0.4]
  StepResult r = stepper.step({1}, [&](int) { return StepLoss{(w * torch::tensor({3.0f, 4.0f})).sum(), {}}; });
  EXPECT_NEAR(r.grad_norm, 5.0, 1e-6);
  EXPECT_TRUE(torch::allclose(w, torch::tensor({-0.3f, -0.4f}), 1e-5, 1e-6));
}

// Data with no trainable tokens must end the run: empty steps count toward max_consecutive_skips
// (they used to be skipped without counting, and the loop waited forever for a step to advance).
TEST(Stepper, EmptyStepsCountTowardTheSkipLimit) {
  Tiny t;  // max_consecutive_skips 3
  for (int i = 0; i < 2; ++i) {
    StepResult r = t.stepper.step({0, 0}, [&](int) { return StepLoss{(t.w * 0).sum(), {}}; });
    EXPECT_FALSE(r.applied);
    EXPECT_NE(r.skip_reason.find("no label tokens"), std::string::npos);
  }
  EXPECT_EQ(t.stepper.consecutive_skips(), 2);
  ASSERT_TRUE(t.step(1.0).applied);
  EXPECT_EQ(t.stepper.consecutive_skips(), 0);
  for (int i = 0; i < 2; ++i) t.stepper.step({0}, [&](int) { return StepLoss{(t.w * 0).sum(), {}}; });
  try {
    t.stepper.step({0}, [&](int) { return StepLoss{(t.w * 0).sum(), {}}; });
    FAIL() << "three empty steps in a row must throw";
  } catch (const tune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no label tokens"), std::string::npos) << e.what();
  }
}

// Metrics are averaged over their own counts, not over the loss normaliser: a per-sequence metric
// over sequences, a per-token one over tokens, across micro-batches of different sizes.
TEST(Stepper, MetricsAreMeansOverTheirOwnCounts) {
  Tiny t;
  // Two micro-batches: 2 sequences of 10 tokens, then 1 sequence of 2 tokens; the loss is
  // normalised by 4 (say, prompts), unrelated to either count.
  const std::vector<std::map<std::string, MetricSum>> micro = {
      {{"reward", {3.0, 2.0}}, {"entropy", {5.0, 10.0}}},
      {{"reward", {0.0, 1.0}}, {"entropy", {1.0, 2.0}}},
  };
  StepResult r = t.stepper.step({3, 1}, [&](int i) { return StepLoss{t.w.sum(), micro[static_cast<size_t>(i)]}; });
  ASSERT_TRUE(r.applied);
  EXPECT_DOUBLE_EQ(r.normalizer, 4.0);
  EXPECT_DOUBLE_EQ(r.metrics.at("reward"), 1.0);          // (3 + 0) / (2 + 1) sequences
  EXPECT_DOUBLE_EQ(r.metrics.at("entropy"), 6.0 / 12.0);  // (5 + 1) / (10 + 2) tokens
  // A metric with no items in the whole step is left out rather than reported as 0.
  StepResult e = t.stepper.step({1}, [&](int) { return StepLoss{t.w.sum(), {{"clip", {0.0, 0.0}}}}; });
  EXPECT_EQ(e.metrics.count("clip"), 0u);
}

TEST(Stepper, UsesTheScheduledLearningRateAndRoundTripsState) {
  Tensor w = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD sgd(std::vector<Tensor>{w}, torch::optim::SGDOptions(123.0));
  Stepper stepper(sgd, LrSchedule({ScheduleKind::linear, 2, 0.0, 0.0}, 1.0, 4), {0.0, 5});
  std::vector<double> lrs;
  for (int i = 0; i < 4; ++i) lrs.push_back(stepper.step({1}, [&](int) { return StepLoss{w.sum(), {}}; }).lr);
  EXPECT_EQ(lrs, (std::vector<double>{0.0, 0.5, 1.0, 0.5}));
  EXPECT_NEAR(w.item<float>(), -2.0, 1e-6);  // grad 1 each step: -(0 + 0.5 + 1 + 0.5)
  Tiny other;
  other.stepper.load_state(stepper.state());
  EXPECT_EQ(other.stepper.steps_done(), 4);
}

}  // namespace

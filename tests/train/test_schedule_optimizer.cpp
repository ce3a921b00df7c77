// LR schedules against transformers' schedulers, and the AdamW parameter groups.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tune/core/error.h"
#include "tune/train/optimizer.h"
#include "tune/train/schedule.h"

namespace {

using namespace tune::train;

void expect_schedule(const LrSchedule& s, const std::vector<double>& expected) {
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(s.lr_at(static_cast<int64_t>(i)), expected[i], 1e-12) << "step " << i;
}

// Expected values: the lr each optimizer step used under transformers 4.x with base lr 1.0
// (get_*_schedule_with_warmup, lr read before each optimizer.step(); scheduler.step() after it).
// Formula (cosine): s < W: s / W; else 0.5 * (1 + cos(pi * (s - W) / (N - W))).
TEST(LrSchedule, CosineMatchesTransformers) {
  ScheduleConfig c{ScheduleKind::cosine, 3, 0.0, 0.0};
  expect_schedule(LrSchedule(c, 1.0, 10),
                  {0.0, 1.0 / 3, 2.0 / 3, 1.0, 0.9504844339512095, 0.8117449009293668, 0.6112604669781572,
                   0.38873953302184283, 0.18825509907063326, 0.04951556604879048});
  // By hand: step 4 is 1/7 of the decay: 0.5 * (1 + cos(pi / 7)) = 0.5 * 1.9009688679 = 0.95048443.
  EXPECT_NEAR(LrSchedule(c, 2e-5, 10).lr_at(4), 2e-5 * 0.95048443395, 1e-15);
}

TEST(LrSchedule, LinearConstantAndMinRatioMatchTransformers) {
  expect_schedule(LrSchedule({ScheduleKind::linear, 2, 0.0, 0.0}, 1.0, 8),
                  {0.0, 0.5, 1.0, 0.8333333333333334, 0.6666666666666666, 0.5, 0.3333333333333333,
                   0.16666666666666666, 0.0});
  expect_schedule(LrSchedule({ScheduleKind::constant, 2, 0.0, 0.0}, 1.0, 4), {0.0, 0.5, 1.0, 1.0});
  // get_cosine_with_min_lr_schedule_with_warmup(warmup 2, total 10, min_lr_rate 0.1)
  expect_schedule(LrSchedule({ScheduleKind::cosine, 2, 0.0, 0.1}, 1.0, 10),
                  {0.0, 0.5, 1.0, 0.9657457896300791, 0.8681980515339464, 0.7222075445642904, 0.55,
                   0.3777924554357096, 0.23180194846605365, 0.13425421036992097});
}

TEST(LrSchedule, WarmupRatioMinRatioAndEnds) {
  // ceil(10 * 0.25) = 3 warmup steps, as transformers' get_warmup_steps.
  LrSchedule s({ScheduleKind::linear, 0, 0.25, 0.0}, 1.0, 10);
  EXPECT_EQ(s.warmup_steps(), 3);
  // Linear to a floor of 20%: step 6 is 3 of the 7 decay steps in -> 0.2 + 0.8 * 4/7.
  LrSchedule floor({ScheduleKind::linear, 3, 0.0, 0.2}, 1.0, 10);
  EXPECT_NEAR(floor.factor_at(10), 0.2, 1e-12);
  EXPECT_NEAR(floor.factor_at(6), 0.2 + 0.8 * (4.0 / 7), 1e-12);
  // No warmup: the first step already uses the full rate; past the end cosine stays at the floor.
  LrSchedule cos({ScheduleKind::cosine, 0, 0.0, 0.1}, 3.0, 4);
  EXPECT_NEAR(cos.lr_at(0), 3.0, 1e-12);
  EXPECT_NEAR(cos.lr_at(4), 0.3, 1e-12);
  EXPECT_NEAR(cos.lr_at(7), 0.3, 1e-12);
  EXPECT_EQ(parse_schedule_kind("cosine"), ScheduleKind::cosine);
  EXPECT_THROW(parse_schedule_kind("cosin"), tune::UsageError);
  EXPECT_THROW(LrSchedule({ScheduleKind::linear, 0, 1.5, 0.0}, 1.0, 10), tune::UsageError);
  EXPECT_THROW(LrSchedule({}, 1.0, 0), tune::UsageError);
}

TEST(AdamW, NoDecayForBiasesAndNormsOnlyTrainable) {
  EXPECT_TRUE(is_no_decay_parameter("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(is_no_decay_parameter("model.layers.3.input_layernorm.weight"));
  EXPECT_TRUE(is_no_decay_parameter("model.norm.weight"));
  EXPECT_TRUE(is_no_decay_parameter("encoder.LayerNorm.weight"));
  EXPECT_FALSE(is_no_decay_parameter("model.layers.0.mlp.down_proj.weight"));
  EXPECT_FALSE(is_no_decay_parameter("lm_head.weight"));
  EXPECT_FALSE(is_no_decay_parameter("bias_proj.weight"));

  NamedParameters params{{"a.weight", torch::ones({2, 2}, torch::requires_grad())},
                         {"a.bias", torch::ones({2}, torch::requires_grad())},
                         {"model.norm.weight", torch::ones({2}, torch::requires_grad())},
                         {"frozen.weight", torch::ones({2, 2})}};
  AdamWConfig config;
  config.lr = 0.1;
  config.weight_decay = 0.5;
  auto opt = make_adamw(params, config);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  EXPECT_EQ(opt->param_groups()[0].params().size(), 1u);
  EXPECT_EQ(opt->param_groups()[1].params().size(), 2u);
  EXPECT_EQ(optimizer_parameters(*opt).size(), 3u);

  // With zero gradients Adam's update is 0, so only decoupled decay moves a weight:
  // w <- w - lr * wd * w = 1 - 0.1 * 0.5 = 0.95; the no-decay ones stay at 1.
  for (auto& p : optimizer_parameters(*opt)) p.mutable_grad() = torch::zeros_like(p);
  opt->step();
  EXPECT_TRUE(torch::allclose(params[0].second, torch::full({2, 2}, 0.95f)));
  EXPECT_TRUE(torch::equal(params[1].second, torch::ones({2})));
  EXPECT_TRUE(torch::equal(params[2].second, torch::ones({2})));
  set_learning_rate(*opt, 0.01);
  for (auto& g : opt->param_groups()) EXPECT_EQ(g.options().get_lr(), 0.01);

  EXPECT_THROW(make_adamw({{"frozen.weight", torch::ones({2})}}, config), tune::Error);
}

TEST(AdamW, NamedParametersOfModuleKeepsTorchNames) {
  torch::nn::Sequential net(torch::nn::Linear(3, 4), torch::nn::Linear(4, 2));
  net[1]->as<torch::nn::Linear>()->bias.set_requires_grad(false);
  auto all = named_parameters_of(*net);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].first, "0.weight");
  EXPECT_EQ(trainable_only(all).size(), 3u);
}

}  // namespace

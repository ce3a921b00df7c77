// KL coefficient controllers: Ziegler et al. 2019's adaptive rule (as verl AdaptiveKLController),
// the piecewise schedule, and their checkpoint state.
#include <gtest/gtest.h>

#include "tune/algo/kl_controller.h"
#include "tune/core/error.h"

namespace {

using namespace tune::algo;

TEST(KlController, AdaptiveFollowsZiegler) {
  AdaptiveKlController kl(0.1, /*target=*/6.0, /*horizon=*/10000);
  // KL 12 = twice the target: error clipped to +0.2; beta *= 1 + 0.2 * 256 / 10000
  kl.update(12.0, 256, 0.1);
  EXPECT_NEAR(kl.value(), 0.1 * 1.00512, 1e-15);
  // KL 5.4: error -0.1; beta *= 1 - 0.1 * 512 / 10000
  kl.update(5.4, 512, 0.2);
  EXPECT_NEAR(kl.value(), 0.1 * 1.00512 * (1 - 0.00512), 1e-15);
  // Far below target: error clipped to -0.2
  const double before = kl.value();
  kl.update(0.0, 10000, 0.3);
  EXPECT_NEAR(kl.value(), before * 0.8, 1e-15);
}

TEST(KlController, ScheduleOverProgress) {
  ScheduledKlController kl({0.08, 0.05, 0.06}, {0.2, 0.6, 0.2});
  EXPECT_DOUBLE_EQ(kl.value(), 0.08);
  EXPECT_DOUBLE_EQ(kl.value_at(0.19), 0.08);
  EXPECT_DOUBLE_EQ(kl.value_at(0.2), 0.05);
  EXPECT_DOUBLE_EQ(kl.value_at(0.79), 0.05);
  EXPECT_DOUBLE_EQ(kl.value_at(0.8), 0.06);
  EXPECT_DOUBLE_EQ(kl.value_at(1.0), 0.06);
  kl.update(123.0, 8, 0.5);  // the observed KL does not matter
  EXPECT_DOUBLE_EQ(kl.value(), 0.05);
}

TEST(KlController, StateRoundTripsAndChecksTheKind) {
  KlControlConfig c;
  c.kind = "adaptive";
  c.init = 0.05;
  auto a = make_kl_controller(c);
  a->update(9.0, 64, 0.25);
  auto b = make_kl_controller(c);
  b->load_state(a->state());
  EXPECT_DOUBLE_EQ(b->value(), a->value());
  EXPECT_NE(b->value(), 0.05);
  b->update(1.0, 64, 0.5);
  a->update(1.0, 64, 0.5);
  EXPECT_DOUBLE_EQ(b->value(), a->value());  // continues exactly
  EXPECT_EQ(a->state()["progress"].get<double>(), 0.5);
  auto fixed = make_kl_controller(KlControlConfig{});
  EXPECT_EQ(fixed->value(), 0.05);
  fixed->update(100.0, 64, 0.5);
  EXPECT_EQ(fixed->value(), 0.05);
  EXPECT_THROW(fixed->load_state(a->state()), tune::Error);
}

TEST(KlController, ConfigErrors) {
  KlControlConfig c;
  c.kind = "schedule";
  EXPECT_THROW(make_kl_controller(c), tune::UsageError);  // no values
  c.values = {0.1, 0.2};
  c.fractions = {0.5, 0.4};
  EXPECT_THROW(make_kl_controller(c), tune::UsageError);  // sums to 0.9
  c.fractions = {0.5};
  EXPECT_THROW(make_kl_controller(c), tune::UsageError);  // lengths differ
  c.fractions = {0.5, 0.5};
  EXPECT_NO_THROW(make_kl_controller(c));
  c.kind = "adaptive";
  c.init = 0;
  EXPECT_THROW(make_kl_controller(c), tune::UsageError);  // 0 never moves
  c.kind = "pid";
  EXPECT_THROW(make_kl_controller(c), tune::UsageError);
}

}  // namespace

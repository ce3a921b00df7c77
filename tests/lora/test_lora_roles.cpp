// Several roles' adapters over one base (lora/roles.h): each role's outputs are those of that role's
// adapters alone on a base of its own, the switch restores the previous role, and roles that adapt
// different projections are refused.
#include <gtest/gtest.h>

#include "lora_test_util.h"
#include "tune/core/error.h"
#include "tune/lora/inject.h"
#include "tune/lora/roles.h"

namespace tune::lora {
namespace {

using testing::tiny_ids;
using testing::tiny_model;

// A LoRA set with non-zero B (a fresh one changes nothing), drawn from `seed`.
LoraSet adapted(model::CausalLM& m, uint64_t seed, LoraConfig cfg = {}) {
  torch::manual_seed(seed);
  cfg.r = 4;
  LoraSet set = inject_lora(m, cfg);
  torch::NoGradGuard g;
  for (const auto& mod : set.modules()) mod.adapter->lora_B().normal_(0.0, 0.5);
  return set;
}

TEST(LoraRoles, EachRoleRunsItsOwnAdaptersOverTheSharedBase) {
  torch::NoGradGuard g;
  const auto ids = tiny_ids();
  // References: each role's adapters on a base of its own.
  auto alone_a = tiny_model(), alone_b = tiny_model(), plain = tiny_model();
  adapted(*alone_a, 1);
  adapted(*alone_b, 2);
  const auto want_a = alone_a->forward(ids), want_b = alone_b->forward(ids), want_base = plain->forward(ids);
  ASSERT_FALSE(torch::allclose(want_a, want_b));

  auto shared = tiny_model();
  AdapterRoles roles;
  LoraSet a = adapted(*shared, 1);
  roles.add("policy", a);
  LoraSet b = adapted(*shared, 2);  // the slots are free again once a role is added
  roles.add("critic", b);
  roles.install();
  EXPECT_EQ(roles.active(), "policy");
  EXPECT_TRUE(torch::equal(shared->forward(ids), want_a));
  {
    auto as = roles.use("critic");
    EXPECT_EQ(roles.active(), "critic");
    EXPECT_TRUE(torch::equal(shared->forward(ids), want_b));
    {
      auto back = roles.use("policy");  // nests
      EXPECT_TRUE(torch::equal(shared->forward(ids), want_a));
    }
    EXPECT_EQ(roles.active(), "critic");
  }
  EXPECT_EQ(roles.active(), "policy");
  {
    model::AdaptersDisabled off;  // the reference: no role's adapters
    EXPECT_TRUE(torch::equal(shared->forward(ids), want_base));
  }
  // The sets keep their tensors (for training and saving): the same objects the switch runs.
  EXPECT_EQ(a.trainable().size(), b.trainable().size());
  EXPECT_TRUE(a.trainable()[1].second.is_same(a.modules()[0].adapter->lora_B()));
}

TEST(LoraRoles, RolesThatAdaptDifferentProjectionsAreRefused) {
  auto shared = tiny_model();
  AdapterRoles roles;
  LoraSet a = adapted(*shared, 1);
  roles.add("policy", a);
  LoraConfig only_q;
  only_q.targets = {"q_proj"};
  LoraSet b = adapted(*shared, 2, only_q);
  roles.add("critic", b);
  try {
    roles.install();
    FAIL() << "installed roles with different targets";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("same LoRA target modules"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)roles.use("reward"), Error);
}

}  // namespace
}  // namespace tune::lora

#pragma once
// Element-wise expectations on small tensors, for tests that compare with values worked by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace tune::test {

// Every element of `actual` (flattened, as float64) is within `tol` of `expected`, same count.
inline void expect_values(const torch::Tensor& actual, const std::vector<double>& expected, double tol = 1e-6) {
  torch::Tensor a = actual.flatten().to(torch::kFloat64);
  ASSERT_EQ(a.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(a[i].item<double>(), expected[i], tol) << "index " << i;
}

}  // namespace tune::test

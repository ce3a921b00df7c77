#pragma once
// Activation checkpointing: run a block without keeping its graph, recompute it with grad during
// backward. Gradients reach the block's parameters (and adapters) by a nested backward(), so this
// supports loss.backward(), not torch::autograd::grad() with respect to parameters.
#include <torch/torch.h>

#include <functional>

namespace tune::model {

using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// y = fn(x) with fn's intermediate activations dropped. fn must be deterministic (no dropout).
torch::Tensor checkpoint(BlockFn fn, const torch::Tensor& x);

}  // namespace tune::model

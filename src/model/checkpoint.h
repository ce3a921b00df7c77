#pragma once
// Activation checkpointing: run a block without keeping its graph, recompute it with grad during
// backward. Gradients reach the block's parameters (and adapters) by a nested backward(), so this
// supports loss.backward(), not torch::autograd::grad() with respect to parameters.
//
// The recompute must be the same network as the forward pass, so it replays what the forward saw:
// the RNG state of the input's device (dropout masks, e.g. LoRA dropout) and this thread's
// AdaptersDisabled state (backward may run on another thread). The caller's RNG is left as it was.
#include <torch/torch.h>

#include <functional>

namespace tune::model {

using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// y = fn(x) with fn's intermediate activations dropped and recomputed in backward.
torch::Tensor checkpoint(BlockFn fn, const torch::Tensor& x);

}  // namespace tune::model

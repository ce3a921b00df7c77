#include "tune/algo/train_loop.h"

#include "tune/train/communicator.h"

namespace tune::algo {

Optimization::Optimization(const train::NamedParameters& trainable, const OptimSection& optim, const LoopSection& loop,
                           int64_t total_steps)
    : parameters(trainable), optimizer(train::make_adamw(trainable, optim.adamw())) {
  // Data parallelism: every rank starts from rank 0's trainable weights, as DDP does.
  train::broadcast_and_verify(train::world(), train::parameter_tensors(trainable), "the start of training");
  train::StepperConfig config;
  config.max_grad_norm = loop.max_grad_norm;
  config.max_consecutive_skips = static_cast<int>(loop.max_consecutive_skips);
  config.shard_optimizer_state = loop.zero_stage == 1;
  stepper = std::make_unique<train::Stepper>(*optimizer, train::LrSchedule(optim.schedule_config(), optim.lr, total_steps),
                                             config);
}

int64_t planned_steps(const LoopSection& loop, int64_t batches_per_epoch) {
  if (loop.max_steps > 0) return loop.max_steps;
  return loop.epochs * std::max<int64_t>(1, batches_per_epoch / loop.grad_accum);
}

}  // namespace tune::algo

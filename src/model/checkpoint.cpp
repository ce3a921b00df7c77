#include "model/checkpoint.h"

#include <mutex>

#include "tune/model/linear.h"

namespace tune::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The default generator of a device: dropout draws from it.
torch::Generator default_generator(const torch::Device& device) {
  if (device.is_cuda()) return torch::globalContext().defaultGenerator(device);
  return torch::globalContext().defaultGenerator(torch::kCPU);
}

torch::Tensor generator_state(torch::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(torch::Generator gen, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Sets a generator to `state` for its lifetime and puts the previous state back after, so the
// recompute draws the forward's random numbers without moving the caller's sequence.
class ReplayRng {
 public:
  ReplayRng(torch::Generator gen, const torch::Tensor& state) : gen_(std::move(gen)), saved_(generator_state(gen_)) {
    set_generator_state(gen_, state);
  }
  ~ReplayRng() { set_generator_state(gen_, saved_); }
  ReplayRng(const ReplayRng&) = delete;
  ReplayRng& operator=(const ReplayRng&) = delete;

 private:
  torch::Generator gen_;
  torch::Tensor saved_;
};

struct Closure : torch::CustomClassHolder {
  BlockFn fn;
  torch::Device device = torch::kCPU;
  torch::Tensor rng_state;        // the device generator's state before the forward pass
  bool adapters_disabled = false;  // AdaptersDisabled::active() during the forward pass
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // `anchor` requires grad so the output does even when x does not (frozen embeddings with LoRA);
  // otherwise backward would never reach the block's trainable parameters.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor anchor,
                               c10::intrusive_ptr<Closure> closure) {
    closure->device = x.device();
    closure->rng_state = generator_state(default_generator(x.device()));
    closure->adapters_disabled = AdaptersDisabled::active();
    ctx->saved_data["fn"] = c10::IValue::make_capsule(closure);
    ctx->save_for_backward({x});
    torch::NoGradGuard no_grad;
    return closure->fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto closure = c10::static_intrusive_pointer_cast<Closure>(ctx->saved_data["fn"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      ReplayRng replay(default_generator(closure->device), closure->rng_state);
      AdapterModeGuard adapters(closure->adapters_disabled);
      torch::AutoGradMode enable(true);
      y = closure->fn(x);
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpoint(BlockFn fn, const torch::Tensor& x) {
  auto closure = c10::make_intrusive<Closure>();
  closure->fn = std::move(fn);
  auto anchor = torch::empty({0}, x.options()).requires_grad_(true);
  return CheckpointFunction::apply(x, anchor, closure);
}

}  // namespace tune::model

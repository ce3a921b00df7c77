#include "model/checkpoint.h"

namespace tune::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Closure : torch::CustomClassHolder {
  BlockFn fn;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // `anchor` requires grad so the output does even when x does not (frozen embeddings with LoRA);
  // otherwise backward would never reach the block's trainable parameters.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor anchor,
                               c10::intrusive_ptr<Closure> closure) {
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

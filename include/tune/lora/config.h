#pragma once
// LoRA hyper-parameters (the `lora:` section of a training config). Torch-free.
//
//   lora:
//     r: 16
//     alpha: 32
//     targets: all-linear            # or [q_proj, v_proj], or full names "model.layers.0.mlp.up_proj"
//     layers_to_transform: [0, 1]    # optional: only these decoder layers
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tune/core/config.h"
#include "tune/core/json.h"

namespace tune::lora {

// The projection names of a Llama-family decoder layer, what "all-linear" expands to.
const std::vector<std::string>& projection_leaf_names();

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  // Entries match a module name that equals them or ends with "." + entry (PEFT's rule);
  // "all-linear" is every projection except lm_head.
  std::vector<std::string> targets = {"all-linear"};
  bool use_rslora = false;
  std::string init = "default";
  // null, an integer, or a list of integers: the decoder layers that get adapters (null = all).
  Json layers_to_transform = nullptr;

  template <class V>
  void visit(V& v) {
    v("r", r, "adapter rank", config::greater_than<int64_t>(0));
    v("alpha", alpha, "scale numerator: delta = alpha/r * B A x (alpha/sqrt(r) with use_rslora)",
      config::greater_than<double>(0.0));
    v("dropout", dropout, "dropout on the adapter input while training", config::in_range(0.0, 0.999));
    v("targets", targets, "module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, "
      "lm_head, or full names) or all-linear", check_targets());
    v("use_rslora", use_rslora, "rank-stabilised scale alpha/sqrt(r)");
    v("init", init, "default: A kaiming-uniform(a=sqrt 5), B zero | gaussian: A normal(std 1/r), B zero",
      config::one_of({"default", "gaussian"}));
    v("layers_to_transform", layers_to_transform, "decoder layer indices to adapt (null = all)",
      check_layers());
  }

  // alpha/r, or alpha/sqrt(r) with use_rslora.
  double scale() const { return scale_for(r, alpha, use_rslora); }
  static double scale_for(int64_t r, double alpha, bool rslora);
  bool all_linear() const;
  // The layer filter as a list; nullopt when every layer is adapted.
  std::optional<std::vector<int64_t>> layers() const;
  // Re-runs the checks of visit() (for configs built in code); throws tune::UsageError.
  void validate() const;

  static config::Check<std::vector<std::string>> check_targets();
  static config::Check<Json> check_layers();
};

// PEFT's target rule: `module_name` equals an entry or ends with "." + entry. "all-linear" matches
// every name whose last component is a decoder projection (so never lm_head).
bool matches_targets(const std::vector<std::string>& targets, std::string_view module_name);
// The first numbered component of a module name ("model.layers.3.mlp.up_proj" -> 3), as PEFT
// finds the layer for layers_to_transform; nullopt when there is none (lm_head).
std::optional<int64_t> layer_index(std::string_view module_name);

}  // namespace tune::lora

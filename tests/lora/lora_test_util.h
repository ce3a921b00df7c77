#pragma once
// A tiny random decoder shared by the LoRA unit tests.
#include <torch/torch.h>

#include <memory>

#include "tune/model/causal_lm.h"
#include "tune/model/weights.h"

namespace tune::lora::testing {

inline model::ModelConfig tiny_config(model::Arch arch = model::Arch::llama) {
  model::ModelConfig c;
  c.arch = arch;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  return c;
}

inline std::shared_ptr<model::CausalLM> tiny_model(uint64_t seed = 1, model::Arch arch = model::Arch::llama) {
  auto m = std::make_shared<model::CausalLM>(tiny_config(arch));
  model::init_random(*m, seed);
  return m;
}

inline torch::Tensor tiny_ids() {  // [2, 7]
  return torch::tensor({3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 3, 23, 8}, torch::kInt64).view({2, 7});
}

}  // namespace tune::lora::testing

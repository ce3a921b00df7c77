#pragma once
// Small random decoders and the tiny tokenizer for the rollout tests.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "tune/lora/inject.h"
#include "tune/model/causal_lm.h"
#include "tune/model/config.h"
#include "tune/model/weights.h"
#include "tune/text/chat_template.h"
#include "tune/text/tiny_tokenizer.h"
#include "tune/text/tokenizer.h"

namespace tune::rollout::testing {

// The `tune init-model --preset tiny` model (Llama, 4 layers, 4 heads over 2 KV heads, tied
// embeddings, the tiny tokenizer's vocabulary), randomly initialised; `init` scales the weights
// (0.02 is init-model's; larger gives peakier logits, a harder numerical case).
inline std::shared_ptr<model::CausalLM> tiny_preset_model(uint64_t seed = 1, double init = 0.02,
                                                          torch::ScalarType dtype = torch::kFloat32) {
  auto tokenizer = text::Tokenizer::from_json(text::tiny_tokenizer_json(), "tiny");
  model::ModelConfig c = model::preset_config("tiny", tokenizer->vocab_size());
  c.initializer_range = init;
  auto m = std::make_shared<model::CausalLM>(c, torch::TensorOptions().dtype(dtype));
  model::init_random(*m, seed);
  return m;
}

// A Qwen2-shaped model: q/k/v biases, 8 query heads over 2 KV heads, untied LM head, 3 layers.
inline std::shared_ptr<model::CausalLM> qwen_shaped_model(uint64_t seed = 2) {
  model::ModelConfig c;
  c.arch = model::Arch::qwen2;
  c.vocab_size = 1024;
  c.hidden_size = 256;
  c.intermediate_size = 704;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = false;
  c.max_position_embeddings = 512;
  c.initializer_range = 0.05;
  auto m = std::make_shared<model::CausalLM>(c);
  model::init_random(*m, seed);
  return m;
}

// A small decoder for behavioural tests (fast): GQA, untied head, peaky logits.
inline std::shared_ptr<model::CausalLM> small_model(uint64_t seed = 1, int64_t vocab = 97) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.tie_word_embeddings = false;
  c.initializer_range = 0.2;
  auto m = std::make_shared<model::CausalLM>(c);
  model::init_random(*m, seed);
  m->eval();
  return m;
}

inline std::unique_ptr<text::Tokenizer> tiny_tokenizer() {
  auto t = text::Tokenizer::from_json(text::tiny_tokenizer_json(), "tiny");
  t->apply_config(text::tiny_tokenizer_config_json(), Json());
  return t;
}

inline text::ChatTemplate tiny_template() {
  return text::ChatTemplate::parse(text::tiny_tokenizer_config_json()["chat_template"].get<std::string>(), "tiny");
}

// LoRA on every projection with A and B both random (a fresh adapter's B is zero, which would
// make it a no-op), so the adapters visibly change the logits.
inline lora::LoraSet random_lora(model::CausalLM& m, uint64_t seed, double dropout = 0.0) {
  lora::LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.dropout = dropout;
  cfg.init = "gaussian";
  torch::manual_seed(seed);  // inject_lora draws A from the default generator
  auto set = lora::inject_lora(m, cfg);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (const auto& mod : set.modules()) mod.adapter->lora_B().copy_(torch::randn(mod.adapter->lora_B().sizes(), gen) * 0.05);
  return set;
}

// Prompts of mixed lengths with ids in [1, vocab).
inline std::vector<std::vector<int32_t>> random_prompts(const std::vector<int64_t>& lengths, int64_t vocab,
                                                        uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::vector<int32_t>> out;
  for (int64_t n : lengths) {
    auto t = torch::randint(1, vocab, {n}, gen, torch::kInt64);
    std::vector<int32_t> p;
    for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>(t[i].item<int64_t>()));
    out.push_back(p);
  }
  return out;
}

}  // namespace tune::rollout::testing

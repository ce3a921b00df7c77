#pragma once
// The Llama-family decoder: embeddings, N pre-norm blocks (GQA attention with RoPE, SwiGLU MLP),
// final RMSNorm and lm_head. Parameter names are the Hugging Face ones
// ("model.layers.3.self_attn.q_proj.weight"), so named_parameters() is the checkpoint layout.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "tune/model/config.h"
#include "tune/model/kv_cache.h"
#include "tune/model/linear.h"

namespace tune::model {

struct ForwardArgs {
  torch::Tensor input_ids;       // [B, T] integer
  // Optional [B, T], or [B, past+T] with a cache: 1 real token, 0 padding (left or right).
  torch::Tensor attention_mask;
  // Optional [B, T]. Default: restart at 0 per sample (sample_ids), else count real tokens of
  // attention_mask (left padding then gives the same positions as no padding), else past..past+T-1.
  torch::Tensor position_ids;
  // Optional [B, T]: packed sequences; attention stays within equal ids (not with a cache).
  torch::Tensor sample_ids;
  KVCache* cache = nullptr;  // appended to, then advanced by T
};

// One projection, by its Hugging Face module name, for LoRA injection and PEFT key names.
struct Projection {
  std::string name;  // "model.layers.3.self_attn.q_proj", "lm_head"
  std::shared_ptr<Linear> linear;
  int64_t in_features = 0;
  int64_t out_features = 0;
};

class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t dim, double eps, torch::TensorOptions options = {});
  // Normalises in fp32, casts back, then multiplies by weight (no +1).
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // [dim]
  double eps;
};

class Attention;
class MLP;
class DecoderLayer;
class DecoderStack;

class CausalLM : public torch::nn::Module {
 public:
  // Parameters are created zeroed (norms one) with `options` (dtype, device; default fp32 CPU):
  // load weights or init_random() afterwards.
  explicit CausalLM(ModelConfig config, torch::TensorOptions options = {});

  const ModelConfig& config() const { return config_; }

  torch::Tensor forward_hidden(const ForwardArgs& args);  // [B, T, D] after the final norm
  torch::Tensor logits(const torch::Tensor& hidden);      // [B, T, D] -> [B, T, V] via lm_head
  torch::Tensor forward(const ForwardArgs& args);         // logits
  torch::Tensor forward(const torch::Tensor& input_ids);  // logits of an unpadded batch

  // Recompute each block in backward instead of storing its activations (training only).
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }
  bool gradient_checkpointing() const { return checkpointing_; }

  // Every Linear (q,k,v,o,gate,up,down per layer, then lm_head) in checkpoint order.
  std::vector<Projection> projections();
  Linear& lm_head() { return *lm_head_; }
  torch::Tensor& embed_weight();  // [V, D]

  // A new cache for `batch` rows and `capacity` slots, in the model's dtype and device.
  KVCache make_cache(int64_t batch, int64_t capacity);
  // dtype/device of the parameters.
  torch::TensorOptions options();

 private:
  ModelConfig config_;
  std::shared_ptr<DecoderStack> model_;
  std::shared_ptr<Linear> lm_head_;  // shares embed weight (not registered) when tied
  bool checkpointing_ = false;
};

}  // namespace tune::model

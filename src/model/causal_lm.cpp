#include "tune/model/causal_lm.h"

#include "model/checkpoint.h"
#include "model/rope.h"
#include "tune/core/error.h"
#include "tune/model/attention.h"

namespace tune::model {

RMSNorm::RMSNorm(int64_t dim, double eps_, torch::TensorOptions options) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}, options));
}

torch::Tensor RMSNorm::forward(const torch::Tensor& x) {
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

// What every layer of one forward pass shares.
struct LayerContext {
  torch::Tensor cos, sin;           // [B, 1, T, hd]
  torch::Tensor full_mask;          // [B, 1, T, Tk] or undefined (causal fast path)
  torch::Tensor window_mask;        // same, for sliding-window layers
  KVCache* cache = nullptr;
};

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& c, torch::TensorOptions o)
      : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
    const int64_t D = c.hidden_size, hd = c.head_dim;
    q_proj = register_module("q_proj", std::make_shared<Linear>(D, heads_ * hd, c.qkv_bias(), o));
    k_proj = register_module("k_proj", std::make_shared<Linear>(D, kv_heads_ * hd, c.qkv_bias(), o));
    v_proj = register_module("v_proj", std::make_shared<Linear>(D, kv_heads_ * hd, c.qkv_bias(), o));
    o_proj = register_module("o_proj", std::make_shared<Linear>(heads_ * hd, D, c.o_bias(), o));
    if (c.qk_norm()) {
      q_norm = register_module("q_norm", std::make_shared<RMSNorm>(hd, c.rms_norm_eps, o));
      k_norm = register_module("k_norm", std::make_shared<RMSNorm>(hd, c.rms_norm_eps, o));
    }
  }

  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, const torch::Tensor& mask, int64_t layer) {
    const int64_t B = x.size(0), T = x.size(1);
    auto q = q_proj->forward(x).view({B, T, heads_, head_dim_});    // [B, T, H, hd]
    auto k = k_proj->forward(x).view({B, T, kv_heads_, head_dim_});  // [B, T, KV, hd]
    auto v = v_proj->forward(x).view({B, T, kv_heads_, head_dim_});
    if (q_norm) {
      q = q_norm->forward(q);
      k = k_norm->forward(k);
    }
    q = apply_rope(q.transpose(1, 2), ctx.cos, ctx.sin);  // [B, H, T, hd]
    k = apply_rope(k.transpose(1, 2), ctx.cos, ctx.sin);  // [B, KV, T, hd]
    v = v.transpose(1, 2);
    if (ctx.cache) std::tie(k, v) = ctx.cache->append(layer, k, v);  // [B, KV, past+T, hd]
    auto out = attention(q, k, v, mask);                                // [B, H, T, hd]
    return o_proj->forward(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }

  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<RMSNorm> q_norm, k_norm;

 private:
  int64_t heads_, kv_heads_, head_dim_;
};

class MLP : public torch::nn::Module {
 public:
  MLP(const ModelConfig& c, torch::TensorOptions o) {
    gate_proj = register_module("gate_proj", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, c.mlp_bias, o));
    up_proj = register_module("up_proj", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, c.mlp_bias, o));
    down_proj = register_module("down_proj", std::make_shared<Linear>(c.intermediate_size, c.hidden_size, c.mlp_bias, o));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
  }
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const ModelConfig& c, int64_t index, torch::TensorOptions o) : index_(index), windowed_(c.layer_window(index).has_value()) {
    self_attn = register_module("self_attn", std::make_shared<Attention>(c, o));
    mlp = register_module("mlp", std::make_shared<MLP>(c, o));
    input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, o));
    post_attention_layernorm =
        register_module("post_attention_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, o));
  }

  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx) {
    const auto& mask = windowed_ ? ctx.window_mask : ctx.full_mask;
    auto h = x + self_attn->forward(input_layernorm->forward(x), ctx, mask, index_);
    return h + mlp->forward(post_attention_layernorm->forward(h));
  }

  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<MLP> mlp;
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;

 private:
  int64_t index_;
  bool windowed_;
};

class DecoderStack : public torch::nn::Module {
 public:
  DecoderStack(const ModelConfig& c, torch::TensorOptions o) {
    embed_tokens = register_module("embed_tokens", std::make_shared<torch::nn::Module>());
    embed_weight = embed_tokens->register_parameter("weight", torch::zeros({c.vocab_size, c.hidden_size}, o));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      auto layer = std::make_shared<DecoderLayer>(c, i, o);
      layers->push_back(layer);
      blocks.push_back(layer);
    }
    norm = register_module("norm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, o));
  }

  std::shared_ptr<torch::nn::Module> embed_tokens;
  torch::Tensor embed_weight;  // [V, D]
  torch::nn::ModuleList layers;
  std::vector<std::shared_ptr<DecoderLayer>> blocks;
  std::shared_ptr<RMSNorm> norm;
  torch::Tensor inv_freq;  // [hd/2] fp32, not a parameter (stays fp32 whatever the model dtype)
};

namespace {

// Positions restart at 0 where the sample id changes.
torch::Tensor packed_positions(const torch::Tensor& sample_ids) {
  const int64_t T = sample_ids.size(1);
  auto index = torch::arange(T, sample_ids.options().dtype(torch::kInt64)).unsqueeze(0).expand_as(sample_ids);
  auto starts = torch::ones_like(sample_ids, torch::kBool);
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(sample_ids.narrow(1, 1, T - 1).ne(sample_ids.narrow(1, 0, T - 1)));
  auto start_index = std::get<0>(torch::where(starts, index, torch::zeros_like(index)).cummax(1));
  return index - start_index;
}

}  // namespace

CausalLM::CausalLM(ModelConfig config, torch::TensorOptions options) : config_(std::move(config)) {
  options = options.requires_grad(false);
  config_.validate("model config");
  model_ = register_module("model", std::make_shared<DecoderStack>(config_, options));
  model_->inv_freq = rope_inv_freq(config_);
  if (config_.tie_word_embeddings) {
    lm_head_ = Linear::shared(model_->embed_weight);
  } else {
    lm_head_ = register_module("lm_head", std::make_shared<Linear>(config_.hidden_size, config_.vocab_size, false, options));
  }
}

torch::Tensor& CausalLM::embed_weight() { return model_->embed_weight; }

torch::TensorOptions CausalLM::options() { return model_->embed_weight.options().requires_grad(false); }

KVCache CausalLM::make_cache(int64_t batch, int64_t capacity) {
  return KVCache(config_, batch, capacity, options());
}

torch::Tensor CausalLM::forward_hidden(const ForwardArgs& args) {
  const auto& ids = args.input_ids;
  TUNE_CHECK(ids.defined() && ids.dim() == 2, "input_ids must be [B, T], got ", ids.defined() ? ids.sizes() : c10::IntArrayRef{});
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = args.cache ? args.cache->length() : 0;
  TUNE_CHECK(!(args.cache && args.sample_ids.defined()), "packed sequences (sample_ids) cannot use a KV cache");
  const auto device = model_->embed_weight.device();

  torch::Tensor positions = args.position_ids;
  if (!positions.defined()) {
    if (args.sample_ids.defined()) {
      positions = packed_positions(args.sample_ids);
    } else if (args.attention_mask.defined()) {
      auto counted = args.attention_mask.to(torch::kInt64).cumsum(1) - 1;  // [B, past+T]
      positions = counted.narrow(1, counted.size(1) - T, T).clamp_min(0);
    } else {
      positions = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kInt64).device(device))
                      .unsqueeze(0)
                      .expand({B, T});
    }
  }
  TUNE_CHECK(positions.size(0) == B && positions.size(1) == T, "position_ids has shape ", positions.sizes(),
             ", expected [", B, ", ", T, "]");

  LayerContext ctx;
  ctx.cache = args.cache;
  auto hidden = torch::embedding(model_->embed_weight, ids.to(device));  // [B, T, D]
  std::tie(ctx.cos, ctx.sin) = rope_cos_sin(model_->inv_freq, positions.to(device), hidden.scalar_type());

  MaskSpec spec;
  spec.batch = B;
  spec.query_len = T;
  spec.past = past;
  spec.key_padding = args.attention_mask;
  spec.sample_ids = args.sample_ids;
  spec.device = device;
  ctx.full_mask = build_attention_mask(spec);
  if (config_.sliding_window) {
    spec.window = config_.sliding_window;
    ctx.window_mask = build_attention_mask(spec);
  }

  const bool checkpoint_blocks = checkpointing_ && is_training() && torch::GradMode::is_enabled() && !args.cache;
  for (auto& block : model_->blocks) {
    if (checkpoint_blocks) {
      // Captured by value: the recomputation runs in backward, after this frame is gone.
      hidden = checkpoint([block, ctx](const torch::Tensor& x) { return block->forward(x, ctx); }, hidden);
    } else {
      hidden = block->forward(hidden, ctx);
    }
  }
  if (args.cache) args.cache->advance(T);
  return model_->norm->forward(hidden);
}

torch::Tensor CausalLM::logits(const torch::Tensor& hidden) { return lm_head_->forward(hidden); }

torch::Tensor CausalLM::forward(const ForwardArgs& args) { return logits(forward_hidden(args)); }

torch::Tensor CausalLM::forward(const torch::Tensor& input_ids) {
  ForwardArgs args;
  args.input_ids = input_ids;
  return forward(args);
}

std::vector<Projection> CausalLM::projections() {
  std::vector<Projection> out;
  auto add = [&](std::string name, const std::shared_ptr<Linear>& l) {
    out.push_back({std::move(name), l, l->in_features(), l->out_features()});
  };
  for (size_t i = 0; i < model_->blocks.size(); ++i) {
    auto& b = *model_->blocks[i];
    const std::string p = str("model.layers.", i, ".");
    add(p + "self_attn.q_proj", b.self_attn->q_proj);
    add(p + "self_attn.k_proj", b.self_attn->k_proj);
    add(p + "self_attn.v_proj", b.self_attn->v_proj);
    add(p + "self_attn.o_proj", b.self_attn->o_proj);
    add(p + "mlp.gate_proj", b.mlp->gate_proj);
    add(p + "mlp.up_proj", b.mlp->up_proj);
    add(p + "mlp.down_proj", b.mlp->down_proj);
  }
  add("lm_head", lm_head_);
  return out;
}

}  // namespace tune::model

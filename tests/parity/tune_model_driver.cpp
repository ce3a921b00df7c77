// Test driver for the parity tests (tests/parity/test_model.py): exposes the model module (and the
// rollout engine's generation) to pytest without the full CLI. Not a user-facing tool.
//
//   tune_model_driver logits --model DIR --ids-json FILE --out FILE.safetensors
//                            [--mask-json FILE] [--sample-ids-json FILE] [--dtype f32|bf16|f16]
//   tune_model_driver generate --model DIR --ids-json FILE --max-new-tokens N [--stop ID]...
//                            [--temperature T] [--top-k K] [--top-p P] [--seed S] [--logprobs]
//                            [--repetition-penalty R]   (prints JSON to stdout)
//   tune_model_driver save-random --preset NAME --vocab V --out DIR --seed S [--arch A]
//   tune_model_driver resave --model DIR --out DIR [--max-shard-bytes N] [--dtype bf16]
#include <torch/torch.h>

#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/io/safetensors.h"
#include "tune/model/causal_lm.h"
#include "tune/model/weights.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"

using namespace tune;
using namespace tune::model;

namespace {

struct Args {
  std::map<std::string, std::vector<std::string>> values;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second.back();
  }
  std::string need(const std::string& key) const {
    auto it = values.find(key);
    if (it == values.end()) usage_fail("missing --", key);
    return it->second.back();
  }
  bool has(const std::string& key) const { return values.count(key) > 0; }
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (!key.starts_with("--")) usage_fail("unexpected argument ", key);
    key = key.substr(2);
    if (key == "logprobs") {
      a.values[key].push_back("1");
      continue;
    }
    if (i + 1 >= argc) usage_fail("--", key, " needs a value");
    a.values[key].push_back(argv[++i]);
  }
  return a;
}

torch::ScalarType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float32") return torch::kFloat32;
  if (s == "bf16" || s == "bfloat16") return torch::kBFloat16;
  if (s == "f16" || s == "float16") return torch::kFloat16;
  usage_fail("unknown dtype ", s);
}

torch::Tensor read_matrix(const std::string& path) {  // JSON list of equal-length int lists -> [B, T] int64
  Json j = read_json_file(path);
  std::vector<int64_t> flat;
  int64_t rows = 0, cols = -1;
  for (const auto& row : j) {
    if (cols >= 0 && static_cast<int64_t>(row.size()) != cols) fail(path, ": rows differ in length");
    cols = static_cast<int64_t>(row.size());
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
    ++rows;
  }
  return torch::tensor(flat, torch::kInt64).view({rows, cols});
}

int cmd_logits(const Args& a) {
  auto model = load_pretrained(a.need("model"), parse_dtype(a.get("dtype", "f32")));
  model->eval();
  torch::NoGradGuard no_grad;
  ForwardArgs args;
  args.input_ids = read_matrix(a.need("ids-json"));
  if (a.has("mask-json")) args.attention_mask = read_matrix(a.get("mask-json"));
  if (a.has("sample-ids-json")) args.sample_ids = read_matrix(a.get("sample-ids-json"));
  auto logits = model->forward(args).to(torch::kFloat32).contiguous();  // [B, T, V]
  std::vector<uint64_t> shape(logits.sizes().begin(), logits.sizes().end());
  io::write_safetensors(a.need("out"),
                        {{"logits", io::DType::F32, shape,
                          {static_cast<const uint8_t*>(logits.data_ptr()), logits.nbytes()}}},
                        {{"format", "pt"}});
  return 0;
}

int cmd_generate(const Args& a) {
  auto model = load_pretrained(a.need("model"), parse_dtype(a.get("dtype", "f32")));
  model->eval();
  Json prompts = read_json_file(a.need("ids-json"));
  std::vector<std::vector<int32_t>> ids;
  for (const auto& row : prompts) ids.push_back(row.get<std::vector<int32_t>>());
  rollout::SamplingConfig cfg;
  cfg.max_new_tokens = std::stoll(a.need("max-new-tokens"));
  cfg.temperature = std::stod(a.get("temperature", "0"));
  cfg.top_k = std::stoll(a.get("top-k", "0"));
  cfg.top_p = std::stod(a.get("top-p", "1"));
  cfg.repetition_penalty = std::stod(a.get("repetition-penalty", "1"));
  rollout::EngineOptions options;
  if (a.values.count("stop"))
    for (const auto& s : a.values.at("stop")) options.eos_ids.push_back(std::stoll(s));
  rollout::RolloutEngine engine(*model, options);
  auto generator = rollout::make_generator(torch::kCPU, std::stoull(a.get("seed", "0")));
  auto results = engine.rollout(ids, 1, cfg, generator);
  auto logprobs = results.logprobs.to(torch::kCPU).contiguous();  // [N, Tc]
  Json out = Json::array();
  for (size_t i = 0; i < results.samples.size(); ++i) {
    const auto& g = results.samples[i];
    Json item = {{"tokens", g.tokens}, {"finish", g.finish == rollout::FinishReason::length ? "length" : "stop"}};
    if (a.has("logprobs")) {
      const float* row = logprobs[static_cast<int64_t>(i)].data_ptr<float>();
      item["logprobs"] = std::vector<float>(row, row + g.completion_length);
    }
    out.push_back(item);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

int cmd_save_random(const Args& a) {
  ModelConfig config = preset_config(a.need("preset"), std::stoll(a.get("vocab", "0")));
  auto model = std::make_shared<CausalLM>(config);
  init_random(*model, std::stoull(a.get("seed", "0")));
  save_pretrained(*model, a.need("out"));
  return 0;
}

int cmd_resave(const Args& a) {
  auto model = load_pretrained(a.need("model"));
  SaveOptions opt;
  if (a.has("max-shard-bytes")) opt.max_shard_bytes = std::stoull(a.get("max-shard-bytes"));
  if (a.has("dtype")) opt.dtype = parse_dtype(a.get("dtype"));
  save_pretrained(*model, a.need("out"), opt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tune_model_driver logits|generate|save-random|resave [options]\n";
    return 2;
  }
  try {
    torch::set_num_threads(2);
    Args a = parse(argc, argv);
    std::string cmd = argv[1];
    if (cmd == "logits") return cmd_logits(a);
    if (cmd == "generate") return cmd_generate(a);
    if (cmd == "save-random") return cmd_save_random(a);
    if (cmd == "resave") return cmd_resave(a);
    usage_fail("unknown command ", cmd);
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

// Test driver for tests/parity/test_lora.py: runs tune's LoRA code on files Python prepared, so the
// parity tests can compare it with peft/transformers. Not a user tool.
//
//   logits         --model DIR [--adapter DIR] [--disabled] --ids-json F --out F
//   random-adapter --model DIR --out DIR --r N --alpha A --targets a,b [--rslora] [--layers 0,1] --seed N
//   merge          --model DIR --adapter DIR --out DIR
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/core/str.h"
#include "tune/lora/inject.h"
#include "tune/lora/peft.h"
#include "tune/model/weights.h"

namespace {

using Args = std::map<std::string, std::string>;

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (!key.starts_with("--")) tune::usage_fail("unexpected argument ", key);
    key = key.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) args[key] = argv[++i];
    else args[key] = "1";
  }
  return args;
}

const std::string& need(const Args& args, const std::string& key) {
  auto it = args.find(key);
  if (it == args.end()) tune::usage_fail("missing --", key);
  return it->second;
}

// ids JSON: [[1, 2, 3], [4, 5, 6]] -> [B, T] int64. Logits out: {"shape": [...], "data": [...]}.
int logits(const Args& args) {
  auto model = tune::model::load_pretrained(need(args, "model"), torch::kFloat32);
  model->eval();
  tune::lora::LoraSet set;
  if (args.count("adapter")) set = tune::lora::load_adapter(*model, need(args, "adapter"));
  auto ids_json = tune::read_json_file(need(args, "ids-json"));
  std::vector<int64_t> flat;
  for (const auto& row : ids_json)
    for (const auto& v : row) flat.push_back(v.get<int64_t>());
  int64_t B = static_cast<int64_t>(ids_json.size());
  auto ids = torch::tensor(flat, torch::kInt64).view({B, -1});  // [B, T]
  torch::NoGradGuard no_grad;
  torch::Tensor out;
  if (args.count("disabled")) {
    tune::model::AdaptersDisabled off;
    out = model->forward(ids);
  } else {
    out = model->forward(ids);  // [B, T, V]
  }
  out = out.to(torch::kFloat64).contiguous();
  tune::Json j;
  j["shape"] = std::vector<int64_t>(out.sizes().begin(), out.sizes().end());
  j["data"] = std::vector<double>(out.data_ptr<double>(), out.data_ptr<double>() + out.numel());
  tune::write_json_file(need(args, "out"), j);
  return 0;
}

int random_adapter(const Args& args) {
  auto model = tune::model::load_pretrained(need(args, "model"), torch::kFloat32);
  tune::lora::LoraConfig config;
  config.r = std::stoll(need(args, "r"));
  config.alpha = std::stod(need(args, "alpha"));
  config.targets = tune::split(need(args, "targets"), ',');
  config.use_rslora = args.count("rslora") > 0;
  if (args.count("layers")) {
    config.layers_to_transform = tune::Json::array();
    for (const auto& l : tune::split(need(args, "layers"), ',')) config.layers_to_transform.push_back(std::stoll(l));
  }
  torch::manual_seed(std::stoull(need(args, "seed")));
  auto set = tune::lora::inject_lora(*model, config);
  // A fresh adapter is the identity (B = 0); give B values so the parity check means something.
  torch::NoGradGuard no_grad;
  for (const auto& m : set.modules()) m.adapter->lora_B().normal_(0.0, 0.05);
  tune::lora::save_adapter(set, config, need(args, "out"), need(args, "model"));
  std::cout << set.modules().size() << " adapted projections, " << set.num_trainable() << " trainable\n";
  return 0;
}

int merge(const Args& args) {
  tune::lora::merge_adapter_to_dir(need(args, "model"), need(args, "adapter"), need(args, "out"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tune_lora_driver logits|random-adapter|merge --key value ...\n";
    return 2;
  }
  std::string cmd = argv[1];
  try {
    Args args = parse(argc, argv);
    if (cmd == "logits") return logits(args);
    if (cmd == "random-adapter") return random_adapter(args);
    if (cmd == "merge") return merge(args);
    std::cerr << "unknown command " << cmd << "\n";
    return 2;
  } catch (const tune::UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

// Benchmark driver for scripts/bench_rollout.py: runs the rollout engine on prompts Python prepared
// and prints its time split as JSON. Not a user tool.
//
//   tune_rollout_driver --model DIR --ids-json FILE --group G --max-new-tokens N [--temperature T]
//                       [--seed S] [--threads N] [--repeat R] [--stop-check K] [--eos ID]...
//
// Without --eos no id ends a completion (every row runs to max_new_tokens, as the Hugging Face
// side is told too). One JSON line per repeat: tokens, seconds and the engine's stats.
#include <torch/torch.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tune/core/error.h"
#include "tune/core/json.h"
#include "tune/model/weights.h"
#include "tune/rollout/engine.h"
#include "tune/rollout/sampling.h"

namespace {

struct Args {
  std::map<std::string, std::vector<std::string>> values;
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second.back();
  }
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (!key.starts_with("--") || i + 1 >= argc) tune::usage_fail("expected --key value, got ", key);
    a.values[key.substr(2)].push_back(argv[++i]);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tune;
  try {
    Args a = parse(argc, argv);
    torch::set_num_threads(std::stoi(a.get("threads", "2")));
    auto model = model::load_pretrained(a.get("model"), torch::kFloat32);
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& row : read_json_file(a.get("ids-json"))) prompts.push_back(row.get<std::vector<int32_t>>());
    rollout::SamplingConfig s;
    s.max_new_tokens = std::stoll(a.get("max-new-tokens", "128"));
    s.temperature = std::stod(a.get("temperature", "1"));
    rollout::EngineOptions o;
    o.config.stop_check_interval = std::stoll(a.get("stop-check", "8"));
    if (a.values.count("eos"))
      for (const auto& e : a.values.at("eos")) o.eos_ids.push_back(std::stoll(e));
    rollout::RolloutEngine engine(*model, o);
    auto gen = rollout::make_generator(torch::kCPU, std::stoull(a.get("seed", "0")));
    const int64_t G = std::stoll(a.get("group", "1"));
    for (int rep = 0; rep < std::stoi(a.get("repeat", "1")); ++rep) {
      auto r = engine.rollout(prompts, G, s, gen);
      const auto& st = r.stats;
      Json out = {{"rows", st.samples},
                  {"completion_tokens", st.completion_tokens},
                  {"distinct_prompts", st.distinct_prompts},
                  {"seconds", st.total_seconds},
                  {"tokens_per_s", static_cast<double>(st.completion_tokens) / st.total_seconds},
                  {"prefill_s", st.prefill_seconds},
                  {"decode_s", st.decode_seconds},
                  {"sampling_s", st.sampling_seconds},
                  {"host_s", st.host_seconds},
                  {"stop_checks", st.stop_checks}};
      std::cout << out.dump() << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

// Runs tune's preference losses on numbers given as JSON (stdin) and prints the results as JSON, so
// tests/parity/test_dpo_losses.py can compare them with TRL on the same log-probs. Not a gtest.
//   {"config": {loss, beta, label_smoothing, simpo_gamma, nll_alpha},
//    "policy": {chosen, rejected, chosen_tokens, rejected_tokens}, "reference": {...}}
//   -> {"losses": [...], "chosen_rewards": [...], "rejected_rewards": [...], "metrics": {...}}
//   {"bradley_terry": {chosen, rejected, margin, center}} -> {"losses": [...]}
#include <torch/torch.h>

#include <iostream>
#include <iterator>

#include "tune/algo/preference_losses.h"
#include "tune/algo/rm.h"
#include "tune/core/json.h"

using namespace tune;

namespace {

torch::Tensor vec(const Json& j) { return torch::tensor(j.get<std::vector<double>>(), torch::kFloat64); }

std::vector<double> list(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

algo::SequenceLogps logps(const Json& j) {
  if (j.is_null()) return {};
  return {vec(j["chosen"]), vec(j["rejected"]), vec(j["chosen_tokens"]), vec(j["rejected_tokens"])};
}

}  // namespace

int main() {
  try {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    Json in = Json::parse(text);
    Json out;
    if (in.contains("bradley_terry")) {
      const Json& b = in["bradley_terry"];
      out["losses"] = list(algo::bradley_terry_loss(vec(b["chosen"]), vec(b["rejected"]), vec(b["margin"]),
                                                    b["center"].get<double>()));
    } else {
      const Json& c = in["config"];
      algo::PreferenceLossConfig cfg{algo::parse_preference_loss(c["loss"].get<std::string>()), c["beta"].get<double>(),
                                     c.value("label_smoothing", 0.0), c.value("simpo_gamma", 0.5),
                                     c.value("nll_alpha", 0.0)};
      auto policy = logps(in["policy"]);
      auto res = algo::preference_loss(cfg, policy, logps(in.value("reference", Json())));
      out["losses"] = list(res.losses);
      out["chosen_rewards"] = list(res.chosen_rewards);
      out["rejected_rewards"] = list(res.rejected_rewards);
      Json m;
      for (const auto& [k, v] : algo::preference_metric_sums(res, policy)) m[k] = v / static_cast<double>(res.losses.numel());
      out["metrics"] = m;
    }
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tune_pref_driver: " << e.what() << "\n";
    return 1;
  }
}
